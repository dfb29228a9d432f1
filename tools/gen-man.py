#!/usr/bin/python3
"""Generate the manual pages of manta_node from the program itself.

    gen-man.py --binary PATH/manta_node --out DIR

writes DIR/manta_node.1 and DIR/manta_node.toml.5:

* manta_node.1 is built from `manta_node --help` (the commands are discovered from its
  "Commands:" section, so a new command appears without touching this script), every
  `manta_node <command> --help`, and, for a command whose help has an "Actions:" section
  (config, ...), every `manta_node <command> <action> --help`. FILES, ENVIRONMENT, EXIT
  STATUS and SEE ALSO are written here.
* manta_node.toml.5 is the Markdown of `manta_node config reference` (the table in
  src/node/common/node_config_keys.c) converted to roff: each [table] a section, each key a tagged
  paragraph with its type, default and notes.

Only the standard library is used. The output is deterministic for a given binary (the date
is $SOURCE_DATE_EPOCH when set, else today's).
"""
import argparse
import datetime
import os
import re
import subprocess
import sys

PROG = "manta_node"
HEADER_RE = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")  # "Options:", "Actions:", "Examples:"
ITEM_RE = re.compile(r"^(\s+)(\S+(?: \S+)*)(?:\s{2,}(\S.*))?$")  # "  --alias NAME   Text"


# --------------------------------------------------------------------------------------------
# roff escaping

def esc(text, minus=True):
    """Escape text for use inside a roff text line (not at its start; see line())."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-" and minus:
            out.append("\\-")
        elif ch == "'":
            out.append("\\(aq")
        elif ch == "`":
            out.append("\\(ga")
        elif ch == '"':
            out.append("\\(dq")
        elif ord(ch) > 126:
            out.append("\\[u%04X]" % ord(ch))
        elif ord(ch) < 32 and ch != "\t":
            continue
        else:
            out.append(ch)
    return "".join(out)


def line(text):
    """A text line: a leading '.' or "'" would make it a request, and leading spaces a
    break, so such lines are protected with the zero-width \\&."""
    text = text.rstrip()
    if text[:1] in (".", "'", " "):
        return "\\&" + text
    return text


def bold(text):
    return "\\fB" + text + "\\fR"


def ital(text):
    return "\\fI" + text + "\\fR"


# --------------------------------------------------------------------------------------------
# running the binary

def run_help(binary, *args):
    """Output of `binary args...`: stdout when it exits 0. A --help that exits non-zero is
    still taken when it printed a usage text (argparse-style programs do that)."""
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", COLUMNS="80")
    env.pop("MANTA_HOME", None)
    p = subprocess.run([binary, *args], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=30)
    text = p.stdout if p.stdout.strip() else p.stderr
    if p.returncode == 0 and text.strip():
        return text.expandtabs()
    if args and args[-1] == "--help" and text.lstrip().startswith("Usage:"):
        return text.expandtabs()
    raise SystemExit("gen-man: `%s %s` failed (exit %d): %s"
                     % (binary, " ".join(args), p.returncode, (p.stderr or p.stdout).strip()))


def section_items(text, header):
    """(name, summary) of each item of a "Header:" block of a help text, in order."""
    items = []
    inside = False
    for raw in text.splitlines():
        if not inside:
            inside = raw.strip() == header + ":"
            continue
        if not raw.strip():
            break
        m = ITEM_RE.match(raw)
        if not m:
            break
        indent, tag, desc = m.groups()
        if desc is None and items and items[-1][1] and len(indent) > 4:
            # continuation of the previous summary
            name, summary = items[-1]
            items[-1] = (name, (summary + " " + raw.strip()).strip())
            continue
        items.append((tag.split()[0], desc or ""))
    return items


def commands_of(top_help):
    cmds = section_items(top_help, "Commands")
    if not cmds:
        raise SystemExit("gen-man: no \"Commands:\" section in `%s --help`" % PROG)
    return cmds


# --------------------------------------------------------------------------------------------
# help text -> roff

def fmt_usage(text):
    """`manta_node config delete NAME [--yes]`: the command words bold, the rest roman."""
    words = text.split(" ")
    n = 0
    while n < len(words) and re.fullmatch(r"[a-z][a-z0-9_-]*", words[n]):
        n += 1
    head = " ".join(words[:n])
    rest = " ".join(words[n:])
    out = bold(esc(head)) if head else ""
    if rest:
        out += (" " if head else "") + fmt_args(rest)
    return out


def fmt_args(text):
    """Options bold, upper-case placeholders italic, everything else roman."""
    def tok(m):
        w = m.group(0)
        if w.startswith("-"):
            return bold(esc(w))
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", w):
            return ital(esc(w))
        return esc(w)
    return re.sub(r"-{1,2}[A-Za-z0-9][A-Za-z0-9-]*|[A-Za-z0-9_]+|[^A-Za-z0-9_-]+|-", tok, text)


def fmt_tag(tag):
    """An item tag: `-y, --non-interactive`, `--alias NAME`, `init [FILE]`."""
    m = re.match(r"([a-z][a-z0-9_-]*)(.*)$", tag)
    if m and not tag.startswith("-"):
        return bold(esc(m.group(1))) + fmt_args(m.group(2))
    return fmt_args(tag)


def help_to_roff(text, skip_usage=False):
    """Render one --help text. Non-indented lines are paragraphs (wrapped lines are joined);
    "Header:" lines start a block of indented items: two-column items become .TP entries,
    one-column items (examples) a literal block. Every line of the help text survives, so
    the page says exactly what --help says."""
    out = []
    lines = text.rstrip("\n").splitlines()
    i = 0
    para = []

    def flush():
        if para:
            out.append(".PP")
            out.append(line(esc(" ".join(para))))
            para.clear()

    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped:
            flush()
            i += 1
            continue
        if stripped.startswith("Usage:") and not raw.startswith(" "):
            flush()
            if not skip_usage:
                out.append(".PP")
                out.append(line(bold("Usage:") + " " + fmt_usage(stripped[6:].strip())))
            i += 1
            continue
        m = HEADER_RE.match(raw)
        if m and i + 1 < len(lines) and lines[i + 1].startswith(" "):
            flush()
            out.append(".PP")
            out.append(line(bold(esc(m.group(1))) + ":"))
            i += 1
            block = []
            while i < len(lines) and lines[i].startswith(" ") and lines[i].strip():
                block.append(lines[i])
                i += 1
            out.extend(block_to_roff(block))
            continue
        if raw.startswith(" "):  # indented text outside a block: keep it literal
            flush()
            out.extend([".PP", ".RS 4", ".nf", line(esc(stripped)), ".fi", ".RE"])
            i += 1
            continue
        para.append(stripped)
        i += 1
    flush()
    return out


def block_to_roff(block):
    parsed = []  # [indent, tag, desc]
    for raw in block:
        m = ITEM_RE.match(raw)
        indent, tag, desc = m.groups()
        if (desc is None and parsed and parsed[-1][2] is not None
                and len(indent) > len(parsed[-1][0]) + 2):
            parsed[-1][2] += " " + raw.strip()  # continuation of a description
            continue
        parsed.append([indent, tag, desc])
    if all(d is None for _, _, d in parsed):  # examples: a literal block
        out = [".RS 4", ".nf"]
        out += [line(esc(t)) for _, t, _ in parsed]
        return out + [".fi", ".RE"]
    out = [".RS 4"]
    for _, tag, desc in parsed:
        out += [".TP", line(fmt_tag(tag))]
        if desc:
            out.append(line(esc(desc)))
    return out + [".RE"]


# --------------------------------------------------------------------------------------------
# manta_node.1

def page_date():
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        d = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    else:
        d = datetime.datetime.now(datetime.timezone.utc)
    return d.strftime("%Y-%m-%d")


def usage_of(help_text):
    for raw in help_text.splitlines():
        if raw.startswith("Usage:"):
            return raw[6:].strip()
    return None


def th(title, section, version, manual):
    return '.TH %s %s "%s" "manta-node %s" "%s"' % (title, section, page_date(), esc(version),
                                                    manual)


def preamble(source):
    return [
        '.\\" Generated by tools/gen-man.py from %s; do not edit by hand.' % source,
        '.\\" Regenerate with: tools/gen-man.py --binary build/<dir>/manta_node --out DIR',
    ]


def man1(binary):
    top = run_help(binary, "--help")
    first = top.splitlines()[0]
    m = re.match(r"^%s\s+(\S+)\s+-\s+(.*)$" % PROG, first)
    version, tagline = (m.group(1), m.group(2)) if m else ("", "the Manta node agent")
    commands = commands_of(top)

    helps = {}     # command -> help text
    actions = {}   # command -> [(action, summary, help text)]
    for name, _ in commands:
        h = run_help(binary, name, "--help")
        helps[name] = h
        acts = section_items(h, "Actions")
        actions[name] = [(a, s, run_help(binary, name, a, "--help")) for a, s in acts]

    o = preamble("`%s --help` and the --help of every command" % PROG)
    o.append(th("MANTA_NODE", "1", version, "User Commands"))
    o += [".nh", ".ad l"]

    o += [".SH NAME", "%s \\- %s" % (esc(PROG), esc(tagline))]

    o.append(".SH SYNOPSIS")
    o += [".nf", bold(PROG) + " " + ital("command") + " [" + ital("options") + "]"]
    for name, _ in commands:
        if helps[name] == top:
            continue
        if actions[name]:
            for a, _, h in actions[name]:
                u = usage_of(h)
                o.append(line(fmt_usage(u) if u else bold(esc("%s %s %s" % (PROG, name, a)))))
        else:
            u = usage_of(helps[name])
            o.append(line(fmt_usage(u) if u else bold(esc("%s %s" % (PROG, name)))))
    o += [bold(PROG) + " " + bold("\\-\\-help") + " | " + bold("\\-h"),
          bold(PROG) + " " + bold("\\-\\-version") + " | " + bold("\\-V"), ".fi"]

    o.append(".SH DESCRIPTION")
    o.append(line(bold(esc(PROG)) + " is " + esc(tagline) + ": the program that turns a "
                  "computer into a worker of the Manta federated-learning platform. A node "
                  "registers with the manager, connects to the MQTT broker the manager names, "
                  "runs the tasks it is sent, serves its datasets to them and reports its "
                  "health until it is stopped."))
    o.append(".PP")
    o.append(line("Each node runs from a named configuration, a TOML file described in "
                  + bold("manta_node.toml") + "(5). "
                  + "Every command prints its options with " + bold("\\-\\-help") + "; "
                  + "this page is generated from that output."))
    o.append(".PP")
    o.append(line(bold("%s node" % esc(PROG)) + " " + ital("command")
                  + " is accepted as a synonym of "
                  + bold(esc(PROG)) + " " + ital("command") + "."))

    o.append(".SH COMMANDS")
    for name, summary in commands:
        o.append(".SS %s" % esc(name))
        if summary:
            o.append(line(esc(summary.rstrip(".")) + "."))
        if helps[name] == top:
            o.append(".PP")
            o.append(line("Prints the same help as " + bold("%s \\-\\-help" % esc(PROG)) + "."))
            continue
        o += help_to_roff(helps[name])
        for a, s, h in actions[name]:
            o.append(".SS %s %s" % (esc(name), esc(a)))
            o += help_to_roff(h)

    examples = []
    inside = False
    for raw in top.splitlines():
        if raw.strip() == "Examples:":
            inside = True
            continue
        if inside:
            if not raw.strip():
                break
            examples.append(raw.strip())
    if examples:
        o += [".SH EXAMPLES", ".RS 4", ".nf"] + [line(esc(e)) for e in examples] + [".fi",
                                                                                  ".RE"]
        trailer = top.split("\n\n")[-1].strip()
        if trailer and not trailer.startswith(("Examples:", "Commands:")):
            o += [".PP", line(esc(" ".join(trailer.split())))]

    o.append(".SH FILES")
    files = [
        ("~/.manta/nodes/" + ital("name") + ".toml",
         "The configuration " + ital("name") + " (see " + bold("manta_node.toml") + "(5)); "
         "written mode 0600 by " + bold("manta_node config init") + "."),
        ("~/.manta/nodes/instances/",
         "One JSON file per running node, " + ital("instance_id") + ".json "
         "(instance id, alias, configuration, PID, start time, log file). "
         "Used to find, stop and follow running nodes; stale files are removed."),
        ("~/.manta/logs/nodes/",
         "Log files of the nodes, " + ital("alias") + ".log, rotated as "
         + ital("alias") + ".log.1 ... (see the [logging] table of "
         + bold("manta_node.toml") + "(5))."),
        ("~/.manta/state/", "Persisted task state (tasks.state_dir)."),
        ("~/.manta/certs/", "TLS files (security.cert_folder): ca.crt, mqtt.crt, mqtt.key."),
        (ital("$MANTA_HOME"),
         "When set, replaces ~/.manta in every path above."),
    ]
    for tag, desc in files:
        o += [".TP", line(tag), line(desc)]

    o.append(".SH ENVIRONMENT")
    env = [
        ("MANTA_HOME", "The folder of configurations, instances, logs and state "
                       "(default: ~/.manta)."),
        ("MANTA_NODE_TOKEN", "The manager's JWT when the configuration says "
                             "secured_token = \"${MANTA_NODE_TOKEN}\" (the default written by "
                             "config init), so the token stays out of the file."),
        ("EDITOR, VISUAL", "The editor of config edit: $EDITOR, else $VISUAL, else the first "
                           "of nano, vim, vi and emacs found in PATH."),
        ("MANTA_NVML_LIBRARY", "The NVML library to load for GPU discovery and monitoring "
                               "(default: libnvidia-ml.so.1). When it cannot be loaded, the "
                               "node offers no GPUs."),
        ("NOTIFY_SOCKET", "Set by systemd for a Type=notify service: the node sends READY=1 "
                          "once it has registered with the manager and subscribed to its "
                          "topics."),
    ]
    for name, desc in env:
        o += [".TP", bold(esc(name)), line(esc(desc))]
    o.append(".PP")
    o.append(line("Any other variable can be used in a configuration as "
                  + esc('"${VAR}"') + " or " + esc('"${VAR:default}"') + "."))

    o.append(".SH EXIT STATUS")
    for code, desc in (("0", "Success (for config validate: the configuration is valid)."),
                       ("1", "Failure: an error was reported (for config validate: the "
                             "configuration is invalid)."),
                       ("2", "Usage error: an unknown option, or an option without its "
                             "value.")):
        o += [".TP", bold(code), line(esc(desc))]

    o.append(".SH SEE ALSO")
    o.append(line(bold("manta_node.toml") + "(5), " + bold("systemctl") + "(1), "
                  + bold("systemd.service") + "(5), " + bold("journalctl") + "(1)"))
    o.append(".PP")
    o.append(line("The systemd unit template " + bold("manta\\-node@.service")
                  + " and the bash completion are installed with the program (see "
                  + "contrib/README.md in the sources)."))
    return "\n".join(o) + "\n"


# --------------------------------------------------------------------------------------------
# manta_node.toml.5: Markdown of `config reference` -> roff

def md_inline(text):
    """`code` bold, **strong** bold, *emphasis* italic; everything else escaped."""
    out = []
    pos = 0
    pat = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*")
    for m in pat.finditer(text):
        out.append(esc(text[pos:m.start()], minus=False))
        if m.group(1) is not None:
            out.append(bold(esc(m.group(1))))
        elif m.group(2) is not None:
            out.append(bold(esc(m.group(2), minus=False)))
        else:
            out.append(ital(esc(m.group(3), minus=False)))
        pos = m.end()
    out.append(esc(text[pos:], minus=False))
    return "".join(out)


def md_cells(row):
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|"):
        row = row[:-1]
    # A "|" inside `code` or escaped as \| does not split the row.
    cells, cur, code = [], [], False
    i = 0
    while i < len(row):
        ch = row[i]
        if ch == "\\" and i + 1 < len(row) and row[i + 1] == "|":
            cur.append("|")
            i += 2
            continue
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    cells.append("".join(cur).strip())
    return cells


def strip_code(s):
    s = s.strip()
    return s[1:-1] if len(s) >= 2 and s[0] == "`" and s[-1] == "`" else s


def man5(binary):
    md = run_help(binary, "config", "reference")
    version_line = run_help(binary, "--version").strip()
    version = version_line.split()[-1] if version_line else ""

    o = preamble("`%s config reference` (src/node/common/node_config_keys.c)" % PROG)
    o.append(th("MANTA_NODE.TOML", "5", version, "File Formats"))
    o += [".nh", ".ad l"]
    o += [".SH NAME", "manta_node.toml \\- configuration file of the Manta node agent"]
    o += [".SH SYNOPSIS", ".nf", line("~/.manta/nodes/" + ital("name") + ".toml"),
          line(ital("$MANTA_HOME") + "/nodes/" + ital("name") + ".toml"), ".fi"]
    o.append(".SH DESCRIPTION")

    lines = md.splitlines()
    i = 0
    in_comment = False
    header = None  # column names of the current table
    keys = 0
    while i < len(lines):
        raw = lines[i]
        s = raw.strip()
        i += 1
        if in_comment:
            in_comment = "-->" not in s
            continue
        if s.startswith("<!--"):
            in_comment = "-->" not in s
            continue
        if not s:
            continue
        if s.startswith("# "):  # the document title: the page has its own
            continue
        if s.startswith("#"):
            title = s.lstrip("#").strip()
            name = strip_code(title)
            level = len(s) - len(s.lstrip("#"))
            if level == 2 and re.fullmatch(r"\[[A-Za-z0-9_.-]+\]", name):
                o.append(".SH %s" % esc(name))
            elif level == 2:
                o.append(".SH %s" % esc(name.upper()))
            else:
                o.append(".SS %s" % esc(name))
            header = None
            continue
        if s.startswith("|"):
            cells = [c.lower() for c in md_cells(s)]
            if header is None:
                header = cells
                if i < len(lines) and re.fullmatch(r"\|?[\s:|-]+\|?", lines[i].strip()):
                    i += 1  # the |---|---| line
                continue
            row = dict(zip(header, md_cells(s)))
            key = strip_code(row.get("key", md_cells(s)[0]))
            o += [".TP", line(bold(esc(key)))]
            parts = []
            if row.get("type"):
                parts.append(ital("Type:") + " " + md_inline(row["type"]) + ".")
            if row.get("default"):
                parts.append(ital("Default:") + " " + md_inline(row["default"]) + ".")
            o.append(line(" ".join(parts)))
            notes = row.get("notes", "")
            if notes:
                o += [".br", line(md_inline(notes))]
            keys += 1
            continue
        header = None
        if s.startswith(("* ", "- ")):
            text = [s[2:].strip()]
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                text.append(lines[i].strip())
                i += 1
            o += [".IP \\(bu 2", line(md_inline(" ".join(text)))]
            continue
        text = [s]
        while (i < len(lines) and lines[i].strip()
               and not lines[i].strip().startswith(("#", "|", "* ", "- ", "<!--"))):
            text.append(lines[i].strip())
            i += 1
        o += [".PP", line(md_inline(" ".join(text)))]
    if keys == 0:
        raise SystemExit("gen-man: no keys found in `%s config reference`" % PROG)

    o.append(".SH FILES")
    o += [".TP", line("~/.manta/nodes/" + ital("name") + ".toml"),
          line("The configuration " + ital("name") + "; the folder follows "
               + ital("$MANTA_HOME") + ".")]
    o.append(".SH SEE ALSO")
    o.append(line(bold("manta_node") + "(1)"))
    return "\n".join(o) + "\n"


# --------------------------------------------------------------------------------------------

def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the manta_node executable")
    ap.add_argument("--out", required=True, help="output folder (created if missing)")
    args = ap.parse_args(argv)
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        raise SystemExit("gen-man: %s is not an executable" % args.binary)
    os.makedirs(args.out, exist_ok=True)
    write(os.path.join(args.out, "manta_node.1"), man1(binary))
    write(os.path.join(args.out, "manta_node.toml.5"), man5(binary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
