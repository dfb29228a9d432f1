"""contrib/ and the generated manual pages, against the real binary.

* tools/gen-man.py: both pages are valid roff (groff -ww without a warning, `man -l`, and a
  structural check of every request and escape), every command of `manta_node --help` is in
  manta_node.1 with its whole --help text (and every `config` action with its own), every
  key of `manta_node config reference` is in manta_node.toml.5 with its type and default,
  and text that looks like roff (leading '.', "'", backslashes) comes out literally.
* contrib/bash-completion/manta_node: driven through COMP_WORDS/COMP_CWORD in bash with a
  fake home; its commands, actions and options equal those the binary's --help prints.
* contrib/manta-node@.service: `systemd-analyze verify` when it exists, and the required
  settings parsed with configparser in any case.
* The CMake install puts the pages and the completion in place.

Rendering needs groff (Debian: groff-base) and, for `man -l`, man-db; `systemd-analyze` is in
systemd. Without them the structural checks and the parsed unit settings stand in, with a
warning in the pytest summary.
"""
import configparser
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest

from conftest import SOURCE_DIR

GEN_MAN = SOURCE_DIR / "tools" / "gen-man.py"
COMPLETION = SOURCE_DIR / "contrib" / "bash-completion" / "manta_node"
UNIT = SOURCE_DIR / "contrib" / "manta-node@.service"
PYTHON = os.environ.get("MANTA_PYTHON", "/usr/bin/python3")

GROFF = shutil.which("groff")
MAN = shutil.which("man")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


# --------------------------------------------------------------------------------------------
# helpers

def run_bin(node_bin, *args):
    env = dict(os.environ, LANG="C.UTF-8")
    env.pop("MANTA_HOME", None)
    p = subprocess.run([node_bin, *args], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=30)
    assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stderr}"
    return p.stdout


def block(text, header):
    """The indented lines of a "Header:" block of a help text."""
    out, inside = [], False
    for raw in text.splitlines():
        if not inside:
            inside = raw.strip() == header + ":"
            continue
        if not raw.strip() or not raw.startswith(" "):
            break
        out.append(raw)
    return out


def items(text, header):
    """Item names of a "Header:" block (first word of each line that has a description)."""
    names = []
    for raw in block(text, header):
        m = re.match(r"^\s+(\S(?:.*?\S)?)\s{2,}\S", raw)
        if m:
            names.append(m.group(1).split()[0])
    return names


def options_in(text):
    """(long, short) option names a help text documents: its Options block and Usage line."""
    lines = block(text, "Options")
    lines += [l for l in text.splitlines() if l.startswith("Usage:")]
    long_, short = set(), set()
    for raw in lines:
        if raw.startswith(" ") and not raw.strip().startswith("-"):
            continue  # the continuation of a description
        tag = re.split(r"\s{2,}", raw.strip(), maxsplit=1)[0] if raw.startswith(" ") else raw
        long_ |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", tag))
        short |= set(re.findall(r"(?<![\w-])-[a-zA-Z](?![\w-])", tag))
    return long_, short


def norm(text):
    """Rendered or source text reduced to words and single spaces, typographic dashes and
    quotes back to ASCII, so a help line can be looked up in a rendered page."""
    for a, b in (("\u2010", "-"), ("\u2212", "-"), ("\u2011", "-"), ("\u2013", "-"),
                 ("\u2019", "'"), ("\u2018", "`"), ("\u201c", '"'), ("\u201d", '"'),
                 ("\u00a0", " ")):
        text = text.replace(a, b)
    text = re.sub(r".\x08", "", text)  # overstrike, should grotty emit it
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return " ".join(text.split())


def deroff(src):
    """A crude roff-to-text for when groff is missing: drop requests, undo our escapes."""
    out = []
    for l in src.splitlines():
        if l.startswith(".") and not l.startswith(("\\&",)):
            m = re.match(r"^\.(SH|SS)\s+(.*)$", l)
            if m:
                out.append(m.group(2))
            continue
        out.append(l)
    text = "\n".join(out)
    text = re.sub(r"\\f[BIRP]", "", text)
    text = re.sub(r"\\\[u([0-9A-F]{4})\]", lambda m: chr(int(m.group(1), 16)), text)
    for a, b in (("\\-", "-"), ("\\(aq", "'"), ("\\(ga", "`"), ("\\(dq", '"'), ("\\(bu", "*"),
                 ("\\&", ""), ("\\e", "\\")):
        text = text.replace(a, b)
    return text


def render(page):
    """Plain text of a page: groff with a very long line, no hyphenation, no bold/underline;
    without groff, deroff()."""
    if not GROFF:
        return deroff(page.read_text())
    p = subprocess.run([GROFF, "-man", "-Tutf8", "-rLL=400n", "-rHY=0", "-P-c", "-P-b", "-P-u",
                        "-P-o", str(page)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, GROFF_NO_SGR="1"))
    assert p.returncode == 0, p.stderr
    return p.stdout


KNOWN_REQUESTS = {"TH", "SH", "SS", "PP", "LP", "P", "TP", "IP", "RS", "RE", "nf", "fi", "br",
                  "nh", "ad", "B", "I", "BR", "IR", "sp", "in"}
ESCAPE_RE = re.compile(r"\\(?:e|-|&|\(..|\[u[0-9A-F]{4,5}\]|f[BIRP]|\")")


def structural_check(path, sections):
    """Every request is known, every escape is one we emit, no text line could be taken for
    a request, and the required sections are there (in order)."""
    src = path.read_text(encoding="ascii")  # non-ASCII must be escaped
    problems = []
    seen = []
    lines = src.splitlines()
    for n, l in enumerate(lines, 1):
        if l.startswith(".\\\""):
            continue
        if l.startswith("'"):
            problems.append(f"{n}: text line starts with an apostrophe: {l!r}")
        if l.startswith("."):
            req = l[1:].split(" ", 1)[0]
            if req not in KNOWN_REQUESTS:
                problems.append(f"{n}: unknown request or unescaped leading dot: {l!r}")
            if req == "SH":
                seen.append(l[4:].strip().strip('"'))
        rest = ESCAPE_RE.sub("", l)
        if "\\" in rest:
            problems.append(f"{n}: unescaped backslash: {l!r}")
        if l != l.rstrip():
            problems.append(f"{n}: trailing white space")
        if n >= 2 and lines[n - 2] == ".TP" and "  " in l:
            problems.append(f"{n}: a tag with a description glued to it: {l!r}")
    assert not problems, "\n".join(problems)
    missing = [s for s in sections if s not in seen]
    assert not missing, f"{path.name}: sections {missing} missing (have {seen})"
    order = [s for s in seen if s in sections]
    assert order == [s for s in sections if s in order], f"{path.name}: order {order}"


def gen_man(binary, out):
    p = subprocess.run([PYTHON, str(GEN_MAN), "--binary", str(binary), "--out", str(out)],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SOURCE_DATE_EPOCH="1700000000"))
    assert p.returncode == 0, p.stderr
    return out / "manta_node.1", out / "manta_node.toml.5"


# --------------------------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def pages(node_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("man")
    return gen_man(node_bin, out)


@pytest.fixture(scope="module")
def helps(node_bin):
    """Every help text: {(): top, ("start",): ..., ("config", "init"): ...}."""
    top = run_bin(node_bin, "--help")
    h = {(): top}
    for cmd in items(top, "Commands"):
        h[(cmd,)] = run_bin(node_bin, cmd, "--help")
        for action in items(h[(cmd,)], "Actions"):
            h[(cmd, action)] = run_bin(node_bin, cmd, action, "--help")
    return h


def commands_of(helps):
    return items(helps[()], "Commands")


# --------------------------------------------------------------------------------------------
# manual pages

MAN1_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "FILES", "ENVIRONMENT",
                 "EXIT STATUS", "SEE ALSO"]
MAN5_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO"]


def test_pages_are_structurally_valid_roff(pages):
    man1, man5 = pages
    structural_check(man1, MAN1_SECTIONS)
    structural_check(man5, MAN5_SECTIONS)
    assert man1.read_text().count("\n.TH ") + man1.read_text().startswith(".TH") == 1


@pytest.mark.parametrize("which", [0, 1], ids=["manta_node.1", "manta_node.toml.5"])
def test_pages_render_without_warnings(pages, which):
    page = pages[which]
    if not GROFF and not MAN:
        # Not a silent skip: the structural check stands in, and the run says so.
        warnings.warn("neither groff nor man is installed (Debian: groff-base, man-db): "
                      f"{page.name} checked structurally only")
        structural_check(page, MAN1_SECTIONS if which == 0 else MAN5_SECTIONS)
        return
    if GROFF:
        p = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-z", str(page)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stderr == "", p.stderr
    if MAN:
        env = dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80", LANG="C.UTF-8")
        p = subprocess.run([MAN, "--warnings", "-l", str(page)], capture_output=True,
                           text=True, timeout=60, env=env)
        assert p.returncode == 0, p.stderr
        assert p.stderr.strip() == "", p.stderr
        assert "NAME" in p.stdout and "SEE ALSO" in p.stdout


def test_man1_has_every_command_with_its_help(pages, helps):
    man1 = pages[0]
    src = man1.read_text()
    text = norm(render(man1))
    cmds = commands_of(helps)
    assert "start" in cmds and "config" in cmds
    top_summaries = dict((c, s) for c, s in
                         (re.match(r"^\s+(\S+)\s{2,}(.*)$", l).groups()
                          for l in block(helps[()], "Commands")))
    for key, help_text in helps.items():
        if not key:
            continue
        assert f"\n.SS {' '.join(key)}\n" in src.replace("\\-", "-"), f"no section for {key}"
        if len(key) == 1:
            assert norm(top_summaries[key[0]]) in text, f"summary of {key[0]} missing"
        if help_text == helps[()]:
            continue  # `help --help` is the top-level help: not repeated
        for l in help_text.splitlines():
            if l.strip():
                assert norm(l) in text, f"{' '.join(key)} --help line missing from the page: {l!r}"
    # the synopsis names every command that is not the help itself
    synopsis = text.split("DESCRIPTION")[0]
    for c in cmds:
        if helps[(c,)] != helps[()]:
            assert f"manta_node {c}" in synopsis, c
    # the examples of the top-level help
    for l in block(helps[()], "Examples"):
        assert norm(l) in text


def test_man1_files_environment_exit_status(pages):
    text = norm(render(pages[0]))
    for s in ("~/.manta/nodes/name.toml", "~/.manta/nodes/instances/", "~/.manta/logs/nodes/",
              "$MANTA_HOME", "MANTA_HOME", "MANTA_NODE_TOKEN", "EDITOR", "VISUAL",
              "MANTA_NVML_LIBRARY", "manta_node.toml(5)"):
        assert s in text, s
    status = text.split("EXIT STATUS")[1].split("SEE ALSO")[0]
    assert re.search(r"\b0 Success", status)
    assert re.search(r"\b1 Failure", status)
    assert re.search(r"\b2 Usage error", status)


def reference_keys(node_bin):
    """[(table, key, type, default)] of `config reference`."""
    md = run_bin(node_bin, "config", "reference")
    out, table = [], None
    for l in md.splitlines():
        m = re.match(r"^## `(\[[^\]]+\])`", l)
        if m:
            table = m.group(1)
            continue
        m = re.match(r"^\| `([A-Za-z0-9_]+)` \| (.*?) \| (.*?) \| .* \|$", l)
        if m and table:
            out.append((table, m.group(1), m.group(2), m.group(3)))
    return out


def test_man5_has_every_key_with_type_and_default(pages, node_bin):
    man5 = pages[1]
    keys = reference_keys(node_bin)
    assert len(keys) > 50
    # In the source: each key a tagged paragraph under the section of its table.
    section, found = None, set()
    lines = man5.read_text().splitlines()
    for i, l in enumerate(lines):
        if l.startswith(".SH "):
            section = l[4:].strip()
        if l == ".TP" and section.startswith("["):
            m = re.fullmatch(r"\\fB([A-Za-z0-9_\\-]+)\\fR", lines[i + 1])
            assert m, lines[i + 1]
            found.add((section, m.group(1).replace("\\-", "-")))
    assert found == {(t, k) for t, k, _, _ in keys}
    # Rendered: "<key> Type: <type>. Default: <default>."
    text = norm(render(man5))
    plain = lambda s: norm(re.sub(r"`|\*\*|\*", "", s))  # noqa: E731
    for table, key, typ, default in keys:
        want = f"{key} Type: {plain(typ)}. Default: {plain(default)}."
        assert want in text, f"{table} {want!r} not in the page"
    for table in {t for t, _, _, _ in keys}:
        assert f"\n{table}\n" in render(man5) or not GROFF


def test_roff_escaping_of_hostile_help_text(tmp_path):
    """Help text that looks like roff comes out literally: leading dots and apostrophes,
    backslashes, hyphens, quotes, non-ASCII, a Markdown table cell with a backslash."""
    fake = tmp_path / "manta_node"
    fake.write_text(textwrap.dedent(r'''
        #!/usr/bin/python3
        import sys
        a = sys.argv[1:]
        top = """manta_node 9.9 - the test agent

        Usage: manta_node <command> [options]

        Commands:
          weird      Print odd things
          config     Manage node configurations

        Run 'manta_node <command> --help'.
        """
        weird = """Usage: manta_node weird [NAME] [--x-y]

        .TH looks like a request
        'quoted start and a back\\slash \\fB not bold \\- still text
        "double" -- em—dash ü

        Options:
          --x-y N     .leading dot in a description
          -h, --help  'apostrophe first
        """
        config = """Usage: manta_node config <action>

        Actions:
          reference   Print the reference
        """
        ref = """# Configuration reference

        Intro with `code` and a \\ backslash.

        ## `[odd]`

        | key | type | default | notes |
        |---|---|---|---|
        | `back_slash` | string | `"C:\\x"` | .dot first, 'quote, a\\|pipe → arrow. *compat* |
        """
        if a == ["--help"]: print(top, end="")
        elif a == ["--version"]: print("manta_node 9.9")
        elif a == ["weird", "--help"]: print(weird, end="")
        elif a == ["config", "--help"]: print(config, end="")
        elif a == ["config", "reference", "--help"]: print("Usage: manta_node config reference")
        elif a == ["config", "reference"]: print(ref, end="")
        else: sys.exit(2)
        ''').lstrip())
    fake.chmod(0o755)
    man1, man5 = gen_man(fake, tmp_path / "out")
    structural_check(man1, MAN1_SECTIONS)
    structural_check(man5, MAN5_SECTIONS)
    weird = subprocess.run([str(fake), "weird", "--help"], capture_output=True, text=True,
                           env=dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")).stdout
    if GROFF:
        p = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-z", str(man1)],
                           capture_output=True, text=True)
        assert p.stderr == ""
    text = norm(render(man1))
    for l in weird.splitlines():
        if l.strip():
            assert norm(l) in text, l
    t5 = norm(render(man5))
    assert 'back_slash Type: string. Default: "C:\\x".' in t5
    assert ".dot first, 'quote, a|pipe \u2192 arrow. compat" in t5
    assert "Intro with code and a \\ backslash." in t5


def test_gen_man_fails_loudly_on_a_bad_binary(tmp_path):
    p = subprocess.run([PYTHON, str(GEN_MAN), "--binary", "/bin/false", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "gen-man:" in p.stderr


# --------------------------------------------------------------------------------------------
# bash completion

@pytest.fixture
def fake_home(tmp_path):
    home = tmp_path / "home"
    nodes = home / ".manta" / "nodes"
    (nodes / "instances").mkdir(parents=True)
    (home / ".manta" / "logs" / "nodes").mkdir(parents=True)
    (nodes / "default.toml").write_text('[identity]\nsecured_token = "x"\n')
    (nodes / "production.toml").write_text('[identity]\nsecured_token = "x"\n')
    (nodes / "instances" / "production-1a2b3c4d.json").write_text(json.dumps(
        {"instance_id": "production-1a2b3c4d", "alias": "prod-gpu-01", "pid": 1}))
    (home / ".manta" / "logs" / "nodes" / "prod-gpu-01.log").write_text("x\n")
    return home


def complete(home, line, env=None):
    """COMPREPLY for the command line `line` (the cursor at its end)."""
    words = line.split(" ")
    script = textwrap.dedent("""
        set -u
        source "$1"; shift
        COMP_WORDS=("$@")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        complete -p manta_node >/dev/null || exit 3
        _manta_node
        printf '%s\\n' "${COMPREPLY[@]}"
        """)
    e = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    e.update(env or {})
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", str(COMPLETION),
                        *words], capture_output=True, text=True, env=e, timeout=30,
                       cwd=str(home))
    assert p.returncode == 0 and p.stderr == "", (line, p.returncode, p.stderr)
    return [w for w in p.stdout.splitlines() if w]


def test_completion_commands_equal_help(fake_home, helps):
    offered = complete(fake_home, "manta_node ")
    assert len(offered) == len(set(offered))
    assert set(offered) == set(commands_of(helps)), \
        "contrib/bash-completion/manta_node: update _manta_node_commands to match --help"
    assert complete(fake_home, "manta_node node ") == offered  # `node` is a no-op prefix
    assert complete(fake_home, "manta_node st") == [c for c in offered if c.startswith("st")]
    assert set(complete(fake_home, "manta_node --")) == {"--help", "--version"}


def test_completion_config_actions(fake_home, helps):
    assert set(complete(fake_home, "manta_node config ")) == set(items(helps[("config",)],
                                                                       "Actions"))
    assert complete(fake_home, "manta_node config va") == ["validate"]


def test_completion_subcommands_of_every_command_equal_help(fake_home, helps):
    for cmd in commands_of(helps):
        h = helps[(cmd,)]
        subs = [s for s in items(h, "Actions") + items(h, "Commands")
                if re.fullmatch(r"[a-z][a-z-]*", s)]
        if subs and h != helps[()]:
            assert set(complete(fake_home, f"manta_node {cmd} ")) == set(subs), cmd


def test_completion_options_equal_help(fake_home, helps):
    for key, h in helps.items():
        if not key or h == helps[()]:
            continue
        long_, short = options_in(h)
        long_.add("--help")
        line = "manta_node " + " ".join(key)
        got = set(complete(fake_home, line + " --"))
        assert got == long_, f"`{line} --`: completion {sorted(got)}, --help {sorted(long_)}"
        got_all = set(complete(fake_home, line + " -"))
        assert short <= got_all, f"`{line} -`: {sorted(short - got_all)} missing"
        assert all(re.fullmatch(r"-[A-Za-z]", o) for o in got_all - long_), sorted(got_all)


def test_completion_start_configurations(fake_home):
    assert complete(fake_home, "manta_node start ") == ["default", "production"]
    assert complete(fake_home, "manta_node start pr") == ["production"]
    assert set(complete(fake_home, "manta_node start --")) >= {"--alias", "--foreground"}
    # one configuration only; the value of --alias is free text
    assert complete(fake_home, "manta_node start default ") == []
    assert complete(fake_home, "manta_node start --alias ") == []
    assert complete(fake_home, "manta_node start --alias w1 ") == ["default", "production"]


def test_completion_config_names(fake_home):
    for action in ("show", "validate", "edit", "delete"):
        assert complete(fake_home, f"manta_node config {action} ") == ["default",
                                                                        "production"], action
    assert complete(fake_home, "manta_node config show production ") == []
    assert complete(fake_home, "manta_node config list ") == []
    assert complete(fake_home, "manta_node cluster start 2 --config ") == ["default",
                                                                         "production"]
    assert complete(fake_home, "manta_node cluster start -c d") == ["default"]


def test_completion_follows_manta_home(fake_home, tmp_path):
    other = tmp_path / "other"
    (other / "nodes").mkdir(parents=True)
    (other / "nodes" / "edge.toml").write_text("")
    assert complete(fake_home, "manta_node start ", env={"MANTA_HOME": str(other)}) == ["edge"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert complete(fake_home, "manta_node start ", env={"MANTA_HOME": str(empty)}) == []


def test_completion_instances_and_logs(fake_home):
    assert complete(fake_home, "manta_node stop ") == ["production-1a2b3c4d"]
    assert complete(fake_home, "manta_node stop --timeout ") == []
    assert set(complete(fake_home, "manta_node logs ")) == {"production-1a2b3c4d", "prod-gpu-01"}
    assert complete(fake_home, "manta_node logs prod-") == ["prod-gpu-01"]
    assert complete(fake_home, "manta_node logs --lines ") == []


def test_completion_config_init_files(fake_home):
    (fake_home / "edge.yaml").write_text("")
    (fake_home / "notes.txt").write_text("")
    (fake_home / "dir").mkdir()
    got = set(complete(fake_home, "manta_node config init "))
    assert {"edge.yaml", "dir"} <= got and "notes.txt" not in got
    assert complete(fake_home, "manta_node config init --gpu ") == ["auto", "yes", "no"]


def test_completion_script_is_static_and_clean():
    text = COMPLETION.read_text()
    assert "complete -F _manta_node manta_node" in text
    # no process is started on TAB: the binary is never run by the completion
    assert not re.search(r"\$\(\s*(manta_node|\"\$\{?COMP_WORDS)", text)
    p = subprocess.run(["bash", "-n", str(COMPLETION)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    if shutil.which("shellcheck"):
        p = subprocess.run(["shellcheck", "-s", "bash", str(COMPLETION)], capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stdout


# --------------------------------------------------------------------------------------------
# systemd unit

def parse_unit(path):
    cp = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",),
                                   comment_prefixes=("#", ";"), empty_lines_in_values=False)
    cp.optionxform = str  # keys are case-sensitive
    cp.read_string(path.read_text())
    return cp


def seconds(v):
    m = re.fullmatch(r"(\d+)(s|min)?", v)
    assert m, v
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def test_unit_required_settings():
    u = parse_unit(UNIT)
    s = u["Service"]
    assert s["Type"] == "notify"
    assert s["ExecStart"] == "/usr/local/bin/manta_node start %i --foreground"
    assert s["Restart"] == "on-failure"
    assert 1 <= seconds(s["RestartSec"]) <= 60
    assert s["KillMode"] == "process"
    assert s["KillSignal"] == "SIGTERM"
    # longer than `manta_node stop`'s own default grace (30 s)
    assert seconds(s["TimeoutStopSec"]) >= 60
    assert s["EnvironmentFile"] == "-/etc/manta/%i.env"
    assert "Environment" in s
    assert "MANTA_NODE_TOKEN" not in s["Environment"]  # the secret stays out of the unit
    assert s["NoNewPrivileges"] == "yes"
    # hardening that would break a node that drives Docker, runc and NVML is off
    for key in ("PrivateTmp", "PrivateDevices", "ProtectHome", "ProtectControlGroups",
                "DevicePolicy", "MemoryDenyWriteExecute", "RestrictNamespaces"):
        assert s.get(key, "no") in ("no", "false"), key
    assert u["Install"]["WantedBy"] == "multi-user.target"
    assert "%i" in u["Unit"]["Description"]
    # KillMode=process is explained next to it
    text = UNIT.read_text()
    comment = text.split("\nKillMode=process")[0].rsplit("\n\n", 1)[-1]
    assert "restart" in comment and "task" in comment


def test_unit_systemd_analyze_verify(node_bin, pages, tmp_path):
    if not SYSTEMD_ANALYZE:
        # Not a silent skip: the parsed settings are asserted instead, and the run says so.
        warnings.warn("systemd-analyze is not installed (Debian: systemd): "
                      "the unit is checked by parsing only")
        test_unit_required_settings()
        return
    units = tmp_path / "units"
    units.mkdir()
    # The real unit, run against the binary under test; its man: links against our pages.
    text = UNIT.read_text().replace("/usr/local/bin/manta_node", os.path.abspath(node_bin))
    inst = units / "manta-node@test.service"
    inst.write_text(text)
    manpath = tmp_path / "man"
    for sect, page in (("man1", pages[0]), ("man5", pages[1])):
        (manpath / sect).mkdir(parents=True)
        shutil.copy(page, manpath / sect / page.name)
    env = dict(os.environ, MANPATH=str(manpath), SYSTEMD_LOG_LEVEL="notice")
    man_ok = MAN is not None
    cmd = [SYSTEMD_ANALYZE, "verify"] + ([] if man_ok else ["--man=no"]) + [str(inst)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0 and (p.stdout + p.stderr).strip() == "", p.stdout + p.stderr


# --------------------------------------------------------------------------------------------
# install

def test_cmake_install_puts_pages_and_completion(tmp_path):
    build = os.environ.get("MANTA_BUILD_DIR")
    if not build:
        pytest.skip("MANTA_BUILD_DIR is set by CTest")
    assert (pathlib.Path(build) / "man" / "manta_node.1").exists(), "the man target is in ALL"
    env = dict(os.environ, DESTDIR=str(tmp_path / "stage"))
    p = subprocess.run(["cmake", "--install", build, "--prefix", "/usr"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    root = tmp_path / "stage" / "usr" / "share"
    assert (root / "man" / "man1" / "manta_node.1").read_text().startswith(".\\\"")
    assert (root / "man" / "man5" / "manta_node.toml.5").exists()
    assert (root / "bash-completion" / "completions" / "manta_node").read_text() == \
        COMPLETION.read_text()


def test_readme_documents_installation():
    text = (SOURCE_DIR / "contrib" / "README.md").read_text()
    for s in ("manta-node@.service", "systemctl enable --now manta-node@", "/etc/manta/",
              "bash-completion/completions", "KillMode=process"):
        assert s in text, s


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
