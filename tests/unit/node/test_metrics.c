/* test_metrics.c - /proc metrics from crafted samples, GPUs through a fake NVML, datasets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets.h"
#include "fsutil.h"
#include "gpu.h"
#include "mem.h"
#include "metrics.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/manta-test-metrics-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *rel, const char *text)
{
    cleanup_free char *p = fs_join(dir, rel);
    cleanup_free char *d = xstrdup(p);
    *strrchr(d, '/') = '\0';
    mt_error *e = NULL;
    assert_int_equal(fs_mkdir_p(d, 0755, &e), 0);
    assert_int_equal(fs_write_atomic(p, text, strlen(text), 0644, &e), 0);
}

static void test_cpu_deltas(void **state)
{
    /* user nice system idle iowait irq softirq steal guest guest_nice */
    put("proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\n"
                     "cpu0 50 0 50 400 0 0 0 0 0 0\n"
                     "cpu1 50 0 50 400 0 0 0 0 0 0\n"
                     "intr 1 2 3\n");
    put("proc/cpuinfo", "processor : 0\nphysical id : 0\ncore id : 0\n\n"
                        "processor : 1\nphysical id : 0\ncore id : 0\n\n");
    cleanup_free char *root = fs_join(dir, "proc");
    metrics_state st;
    metrics_init(&st, root);
    cpu_metrics c;
    mt_error *e = NULL;
    assert_int_equal(metrics_cpu(&st, &c, &e), 0);
    /* since boot: 200 busy of 1000 */
    assert_true(fabsf(c.usage_percent - 20.0f) < 0.01f);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.physical_count, 1);
    metrics_cpu_release(&c);

    /* next sample: cpu0 fully busy, cpu1 idle; 40 ticks of guest inside user */
    put("proc/stat", "cpu  300 0 100 1000 0 0 0 0 40 0\n"
                     "cpu0 250 0 50 400 0 0 0 0 40 0\n"
                     "cpu1 50 0 50 600 0 0 0 0 0 0\n");
    assert_int_equal(metrics_cpu(&st, &c, &e), 0);
    /* delta: user 200 (guest 40), idle 200 of 400 -> 50 % busy */
    assert_true(fabsf(c.usage_percent - 50.0f) < 0.01f);
    assert_true(fabsf(c.user_percent - 40.0f) < 0.01f); /* (200-40)/400 */
    assert_true(fabsf(c.idle_percent - 50.0f) < 0.01f);
    assert_true(fabsf(c.system_percent - 0.0f) < 0.01f);
    assert_true(fabsf(c.per_cpu[0] - 100.0f) < 0.01f);
    assert_true(fabsf(c.per_cpu[1] - 0.0f) < 0.01f);
    metrics_cpu_release(&c);

    /* same sample again: no time passed, no division by zero */
    assert_int_equal(metrics_cpu(&st, &c, &e), 0);
    assert_true(c.usage_percent == 0.0f);
    metrics_cpu_release(&c);
    metrics_release(&st);
}

static void test_memory(void **state)
{
    put("proc/meminfo", "MemTotal:       1000000 kB\nMemFree:         100000 kB\n"
                        "MemAvailable:    400000 kB\nBuffers:          50000 kB\n"
                        "Cached:          200000 kB\nSReclaimable:     50000 kB\n"
                        "SwapTotal:       200000 kB\nSwapFree:        150000 kB\n");
    cleanup_free char *root = fs_join(dir, "proc");
    metrics_state st;
    metrics_init(&st, root);
    mem_metrics m;
    mt_error *e = NULL;
    assert_int_equal(metrics_memory(&st, &m, &e), 0);
    assert_int_equal(m.total, 1000000ull * 1024);
    assert_int_equal(m.available, 400000ull * 1024);
    assert_int_equal(m.free, 100000ull * 1024);
    assert_int_equal(m.used, (1000000ull - 100000 - 50000 - 250000) * 1024);
    assert_true(fabsf(m.percent_used - 60.0f) < 0.01f);
    assert_int_equal(m.swap_used, 50000ull * 1024);
    assert_true(fabsf(m.swap_percent_used - 25.0f) < 0.01f);
    metrics_release(&st);

    /* malformed: a clear error, no crash */
    put("bad/meminfo", "nonsense\n");
    cleanup_free char *bad = fs_join(dir, "bad");
    metrics_init(&st, bad);
    assert_int_equal(metrics_memory(&st, &m, &e), -1);
    assert_non_null(strstr(mt_error_msg(e), "lacks MemTotal"));
    mt_error_free(&e);
    metrics_release(&st);
}

static void test_network_disk_real(void **state)
{
    put("proc/net/dev", "Inter-|   Receive |  Transmit\n"
                        " face |bytes packets errs drop fifo frame compressed multicast|bytes...\n"
                        "    lo: 999 9 0 0 0 0 0 0 999 9 0 0 0 0 0 0\n"
                        "  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
                        "  eth1: 1 1 0 0 0 0 0 0 2 2 0 0 0 0 0 0\n");
    cleanup_free char *root = fs_join(dir, "proc");
    metrics_state st;
    metrics_init(&st, root);
    net_metrics n;
    mt_error *e = NULL;
    assert_int_equal(metrics_network(&st, &n, &e), 0);
    assert_int_equal(n.bytes_recv, 1001);
    assert_int_equal(n.bytes_sent, 2002);
    assert_int_equal(n.packets_sent, 22);
    metrics_release(&st);

    disk_metrics d;
    assert_int_equal(metrics_disk(dir, &d, &e), 0);
    assert_true(d.total > 0 && d.percent_used >= 0 && d.percent_used <= 100);
    assert_int_equal(metrics_disk("/nonexistent/x", &d, &e), -1);
    mt_error_free(&e);

    /* the real /proc works */
    metrics_init(&st, NULL);
    cpu_metrics c;
    assert_int_equal(metrics_cpu(&st, &c, &e), 0);
    assert_true(c.count >= 1);
    metrics_cpu_release(&c);
    uint64_t up;
    assert_int_equal(metrics_uptime(&st, &up, &e), 0);
    metrics_release(&st);
    platform_info p;
    metrics_platform(&p);
    assert_string_equal(p.system, "Linux");
    assert_true(strlen(p.release) > 0 && strlen(p.machine) > 0);
}

static void test_gpu_fake_and_absent(void **state)
{
    const char *fake = getenv("MANTA_FAKE_NVML");
    assert_non_null(fake);
    gpu_report r;
    unsetenv("FAKE_NVML_FAIL_INIT");
    gpu_probe(fake, &r);
    assert_int_equal(r.count, 2);
    assert_string_equal(r.devices[1].name, "Fake GPU 1");
    assert_string_equal(r.devices[0].uuid, "GPU-fake-0000");
    assert_true(r.devices[1].usage_percent == 40.0f);
    assert_int_equal(r.devices[0].memory_total, 16ull << 30);
    assert_true(fabsf(r.devices[0].memory_percent_used - 25.0f) < 0.01f);
    assert_int_equal(r.devices[0].power_draw, 120);
    assert_int_equal(r.devices[0].power_limit, 250);
    assert_string_equal(r.note, "");
    gpu_report_release(&r);

    setenv("FAKE_NVML_FAIL_INIT", "1", 1);
    gpu_probe(fake, &r);
    assert_int_equal(r.count, 0);
    assert_non_null(strstr(r.note, "could not initialise"));
    gpu_report_release(&r);
    unsetenv("FAKE_NVML_FAIL_INIT");

    gpu_probe("/nonexistent/libnvidia-ml.so.1", &r);
    assert_int_equal(r.count, 0);
    assert_non_null(strstr(r.note, "NVML not found"));
    gpu_report_release(&r);

    gpu_probe("libc.so.6", &r); /* loads, but is not NVML */
    assert_int_equal(r.count, 0);
    assert_non_null(strstr(r.note, "not a usable NVML library"));
    gpu_report_release(&r);
}

static void test_datasets(void **state)
{
    put("data/mnist_v2.npz", "x");
    put("data/notes.TXT", "x");
    put("data/raw", "x");
    put("data/folder/a.csv", "x");
    cleanup_free char *a = xasprintf("%s/data/mnist_v2.npz", dir);
    cleanup_free char *b = xasprintf("%s/data/notes.TXT", dir);
    cleanup_free char *c = xasprintf("%s/data/raw", dir);
    cleanup_free char *f = xasprintf("%s/data/folder/", dir);
    char *keys[] = {"mnist", "notes", "raw", "imgs"};
    char *vals[] = {a, b, c, f};
    cfg_map m = {4, keys, vals};
    dataset_set s;
    mt_error *e = NULL;
    assert_int_equal(datasets_scan(&m, &s, &e), 0);
    assert_int_equal(s.len, 4);
    assert_string_equal(s.items[0].name, "mnist_v2"); /* from the path, as the reference */
    assert_string_equal(s.items[0].description, "File in mnist_v2.npz");
    assert_string_equal(s.items[0].dtype, "numpy");
    assert_string_equal(s.items[1].dtype, "text");
    assert_string_equal(s.items[2].dtype, "binary");
    assert_string_equal(s.items[3].name, "folder");
    assert_string_equal(s.items[3].description, "Folder in folder");
    assert_string_equal(s.items[3].dtype, "folder");
    assert_non_null(datasets_find(&s, "imgs"));
    assert_null(datasets_find(&s, "nope"));
    datasets_release(&s);

    char *k2[] = {"gone", "dev"};
    char *v2[] = {"/nonexistent/data", "/dev/null"};
    cfg_map m2 = {2, k2, v2};
    assert_int_equal(datasets_scan(&m2, &s, &e), -1);
    assert_non_null(
        strstr(mt_error_msg(e), "Dataset 'gone' path does not exist: /nonexistent/data"));
    assert_non_null(strstr(mt_error_msg(e), "Dataset 'dev' is neither a file nor a directory"));
    mt_error_free(&e);
    assert_string_equal(datasets_dtype("x.JPEG"), "image");
    assert_string_equal(datasets_dtype(".hidden"), "binary");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_deltas),        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_network_disk_real), cmocka_unit_test(test_gpu_fake_and_absent),
        cmocka_unit_test(test_datasets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
