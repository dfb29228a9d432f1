"""FedAvg scheduler: ends the swarm when every tester reached the accuracy threshold or the
round limit is reached; otherwise runs the workers again (the next iteration).

Reads  globals "hyperparameters" (val_acc_threshold, max_rounds, reschedule), "round";
       results "metrics" of this round
Writes global "round" (how many times the scheduler ran), then StopSwarm or ScheduleTask
       (alias "worker"; on the nodes below the threshold, or on every tester's node when
       hyperparameters.reschedule = "all")
"""
from manta.light.task import Task


def decide(metrics, hp, rnd):
    """('stop', reason) or ('schedule', node_ids)."""
    if not metrics:
        return "stop", "no tester reported metrics"
    threshold = hp.get("val_acc_threshold", 0.9)
    below = sorted(n for n, m in metrics.items() if m["val_acc"] < threshold)
    if not below:
        return "stop", f"every node reached val_acc {threshold}"
    if rnd >= hp.get("max_rounds", 10):
        return "stop", f"round limit {hp.get('max_rounds', 10)} reached"
    return "schedule", sorted(metrics) if hp.get("reschedule", "below") == "all" else below


class Scheduler(Task):
    def run(self):
        hp = self.world.globals["hyperparameters"]
        rnd = int(self.world.globals.get("round", 0) or 0) + 1
        self.world.globals["round"] = rnd
        metrics = self.world.results.select("metrics")
        accs = ", ".join(f"{n[:8]} {m['val_acc']:.3f}" for n, m in sorted(metrics.items()))
        self.logger.info("round %d: val_acc %s", rnd, accs)
        action, what = decide(metrics, hp, rnd)
        if action == "stop":
            self.logger.info("stopping the swarm: %s", what)
            self.world.stop_swarm()
        else:
            self.logger.info("next round on %d node(s)", len(what))
            self.world.schedule_next_iter(node_ids=what, task_to_schedule_alias="worker")


def main():
    Scheduler().run()
