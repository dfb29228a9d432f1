"""Byte-compatibility of the protobuf-c encoding (mantapb) with Google's protobuf, for every
message type of the wire contract (proto/), plus the int32 -> uint32 ResultQuery.size quirk.

The C side is tools/proto-roundtrip.c; its header documents the deterministic fill rule, which
`fill()` below implements again on the Python descriptors. Summary: a message instance has a
depth d (top level 0) and an index s (its position in a repeated/map field, else 0); field
number n, element i give k = 10000*d + 1000*s + 100*i + n, and
    int32/sint32/sfixed32 -k, int64/... -k*2**32, uint32/fixed32 2**31+k, uint64/fixed64 2**63+k,
    float k+0.5, double k+0.25, bool True, enum the (k mod count)-th non-zero value (ascending),
    string "f<n>-<d>-<s>-<i>é", bytes 00 n d s i ff, messages recursively while d+1 <= 3,
    repeated 2 elements, map 2 entries (entry messages at d+1, s = 0, 1), optional fields present,
    google.protobuf.Timestamp seconds 1700000000+k(1), nanos 1000*k(2).

Per message type (one pytest case each, so a failure names the type):
  (a) C fill -> Python parses every field with exactly the value the rule predicts (presence
      of optional fields included), the raw bytes use the expected wire types (packed repeated
      numerics: one length-delimited record), fields come in field-number order, and Python's
      re-serialisation equals C's bytes (maps: parsed values are compared instead);
  (b) Python fill -> C echo -> identical bytes / equal parse; likewise for the all-default
      message and for the message with every optional field present at its zero value;
  (c) C echo rejects invalid bytes with a message and a non-zero exit.
"""
import os
import pathlib
import re
import subprocess

import pytest
from google.protobuf import descriptor as D
from google.protobuf import symbol_database
from google.protobuf import timestamp_pb2  # noqa: F401  (registers google.protobuf.Timestamp)

from pbgen import PROTO_DIR, pb

BUILD_DIR = os.environ.get("MANTA_BUILD_DIR")
TOOL = pathlib.Path(BUILD_DIR) / "proto-roundtrip" if BUILD_DIR else None

MAX_DEPTH = 3
N_REPEATED = 2
TIMESTAMP_BASE = 1_700_000_000
TIMESTAMP = "google.protobuf.Timestamp"

FD = D.FieldDescriptor
SIGNED32 = {FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32}
SIGNED64 = {FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64}
UNSIGNED32 = {FD.TYPE_UINT32, FD.TYPE_FIXED32}
UNSIGNED64 = {FD.TYPE_UINT64, FD.TYPE_FIXED64}
VARINT_TYPES = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_SINT32,
                FD.TYPE_SINT64, FD.TYPE_BOOL, FD.TYPE_ENUM}
FIXED32_TYPES = {FD.TYPE_FIXED32, FD.TYPE_SFIXED32, FD.TYPE_FLOAT}
FIXED64_TYPES = {FD.TYPE_FIXED64, FD.TYPE_SFIXED64, FD.TYPE_DOUBLE}
LEN_TYPES = {FD.TYPE_STRING, FD.TYPE_BYTES, FD.TYPE_MESSAGE}
WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5
TYPE_NAMES = {v: k[5:].lower() for k, v in vars(FD).items() if k.startswith("TYPE_")}


# ---- the message types of proto/ ----

def _proto_modules():
    return sorted(str(p.relative_to(PROTO_DIR).with_suffix("")).replace("/", ".") + "_pb2"
                  for p in PROTO_DIR.rglob("*.proto"))


def _walk(desc):
    yield desc
    for nested in desc.nested_types:
        yield from _walk(nested)


def proto_messages():
    """Full name -> descriptor of every message type (nested and map entries included)."""
    out = {}
    for mod in _proto_modules():
        for top in pb(mod).DESCRIPTOR.message_types_by_name.values():
            for desc in _walk(top):
                out[desc.full_name] = desc
    return out


MESSAGES = proto_messages()
ALL_NAMES = sorted(MESSAGES) + [TIMESTAMP]
MESSAGES[TIMESTAMP] = timestamp_pb2.Timestamp.DESCRIPTOR


def cls(desc):
    return symbol_database.Default().GetSymbol(desc.full_name)


def is_map(f):
    return f.type == FD.TYPE_MESSAGE and f.message_type.GetOptions().map_entry


def is_optional(f):
    """proto3 `optional`: the only member of its synthetic oneof `_<name>`."""
    o = f.containing_oneof
    return o is not None and o.name == "_" + f.name and len(o.fields) == 1


def packable(f):
    return f.label == FD.LABEL_REPEATED and f.type not in LEN_TYPES


def by_number(desc):
    return sorted(desc.fields, key=lambda f: f.number)


# ---- the fill rule (same as tools/proto-roundtrip.c) ----

def rule_k(n, d, s, i):
    return 10000 * d + 1000 * s + 100 * i + n


def rule_enum(enum_desc, k):
    nonzero = sorted(v.number for v in enum_desc.values if v.number != 0)
    return nonzero[k % len(nonzero)] if nonzero else enum_desc.values[0].number


def rule_scalar(f, d, s, i):
    k = rule_k(f.number, d, s, i)
    t = f.type
    if t in SIGNED32:
        return -k
    if t in SIGNED64:
        return -k * 2**32
    if t in UNSIGNED32:
        return 2**31 + k
    if t in UNSIGNED64:
        return 2**63 + k
    if t == FD.TYPE_FLOAT:
        return k + 0.5
    if t == FD.TYPE_DOUBLE:
        return k + 0.25
    if t == FD.TYPE_BOOL:
        return True
    if t == FD.TYPE_ENUM:
        return rule_enum(f.enum_type, k)
    if t == FD.TYPE_STRING:
        return f"f{f.number}-{d}-{s}-{i}\u00e9"
    if t == FD.TYPE_BYTES:
        return bytes([0, f.number, d, s, i, 0xFF])
    raise AssertionError(f"no rule for field type {t} ({f.full_name})")


def zero_value(f):
    if f.type == FD.TYPE_STRING:
        return ""
    if f.type == FD.TYPE_BYTES:
        return b""
    if f.type == FD.TYPE_BOOL:
        return False
    return 0


def fill(msg, d=0, s=0, optional_zero=False):
    """Populate msg by the rule. optional_zero: optional fields present at their zero value
    (optional messages present and empty) instead."""
    desc = msg.DESCRIPTOR
    if desc.full_name == TIMESTAMP:
        msg.seconds = TIMESTAMP_BASE + rule_k(1, d, s, 0)
        msg.nanos = 1000 * rule_k(2, d, s, 0)
        return msg
    for f in by_number(desc):
        is_msg = f.type == FD.TYPE_MESSAGE
        if is_msg and d + 1 > MAX_DEPTH:
            continue
        if f.containing_oneof is not None and msg.WhichOneof(f.containing_oneof.name):
            continue  # a real oneof: its lowest-numbered member only
        if is_map(f):
            kf = f.message_type.fields_by_name["key"]
            vf = f.message_type.fields_by_name["value"]
            assert vf.type != FD.TYPE_MESSAGE, f"{f.full_name}: extend the rule to map<_, message>"
            for i in range(N_REPEATED):
                getattr(msg, f.name)[rule_scalar(kf, d + 1, i, 0)] = rule_scalar(vf, d + 1, i, 0)
        elif f.label == FD.LABEL_REPEATED:
            container = getattr(msg, f.name)
            for i in range(N_REPEATED):
                if is_msg:
                    fill(container.add(), d + 1, i, optional_zero)
                else:
                    container.append(rule_scalar(f, d, s, i))
        elif is_msg:
            sub = getattr(msg, f.name)
            sub.SetInParent()
            if not (optional_zero and is_optional(f)):
                fill(sub, d + 1, 0, optional_zero)
        elif optional_zero and is_optional(f):
            setattr(msg, f.name, zero_value(f))
        else:
            setattr(msg, f.name, rule_scalar(f, d, s, 0))
    return msg


def filled(name, optional_zero=False):
    return fill(cls(MESSAGES[name])(), optional_zero=optional_zero)


def has_map(desc, seen=None):
    seen = seen if seen is not None else set()
    if desc.full_name in seen:
        return False
    seen.add(desc.full_name)
    return any(is_map(f) or (f.type == FD.TYPE_MESSAGE and has_map(f.message_type, seen))
               for f in desc.fields)


def has_optional(desc, seen=None):
    seen = seen if seen is not None else set()
    if desc.full_name in seen:
        return False
    seen.add(desc.full_name)
    return any(is_optional(f) or (f.type == FD.TYPE_MESSAGE and has_optional(f.message_type, seen))
               for f in desc.fields)


# ---- field-by-field comparison ----

def differences(got, want, path):
    """Human-readable differences between two messages of the same type, field by field."""
    out = []
    for f in by_number(want.DESCRIPTOR):
        p = f"{path}.{f.name}"
        g, w = getattr(got, f.name), getattr(want, f.name)
        if is_map(f):
            if dict(g) != dict(w):
                out.append(f"{p}: {dict(g)!r} != expected {dict(w)!r}")
        elif f.label == FD.LABEL_REPEATED:
            if len(g) != len(w):
                out.append(f"{p}: {len(g)} elements, expected {len(w)}")
                continue
            for i, (ge, we) in enumerate(zip(g, w)):
                if f.type == FD.TYPE_MESSAGE:
                    out += differences(ge, we, f"{p}[{i}]")
                elif ge != we:
                    out.append(f"{p}[{i}]: {ge!r} != expected {we!r}")
        else:
            if f.has_presence and got.HasField(f.name) != want.HasField(f.name):
                out.append(f"{p}: present={got.HasField(f.name)}, expected "
                           f"present={want.HasField(f.name)}")
                continue
            if f.type == FD.TYPE_MESSAGE:
                if want.HasField(f.name):
                    out += differences(g, w, p)
            elif g != w or type(g) is not type(w):
                out.append(f"{p}: {g!r} != expected {w!r}")
    if len(got.UnknownFields()):
        out.append(f"{path}: {len(got.UnknownFields())} unknown field(s)")
    return out


# ---- a raw wire-format reader, to check what Python's parser does not show ----

def read_varint(buf, pos):
    value, shift, start = 0, 0, pos
    while True:
        assert pos < len(buf), "truncated varint"
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos, pos - start
        assert shift < 70, "varint longer than 10 bytes"


def records(buf):
    """(field number, wire type, payload, varint length) for each record of a message."""
    pos, out = 0, []
    while pos < len(buf):
        tag, pos, _ = read_varint(buf, pos)
        num, wt = tag >> 3, tag & 7
        if wt == WT_VARINT:
            v, pos, n = read_varint(buf, pos)
            out.append((num, wt, v, n))
        elif wt == WT_I64:
            out.append((num, wt, buf[pos:pos + 8], 8))
            pos += 8
        elif wt == WT_I32:
            out.append((num, wt, buf[pos:pos + 4], 4))
            pos += 4
        elif wt == WT_LEN:
            n, pos, _ = read_varint(buf, pos)
            out.append((num, wt, buf[pos:pos + n], n))
            pos += n
        else:
            raise AssertionError(f"wire type {wt} (field {num})")
        assert pos <= len(buf), f"field {num} runs past the end"
    return out


def expected_wire_type(f):
    if f.type in VARINT_TYPES:
        return WT_VARINT
    if f.type in FIXED32_TYPES:
        return WT_I32
    if f.type in FIXED64_TYPES:
        return WT_I64
    return WT_LEN


def packed_count(f, payload):
    if f.type in FIXED32_TYPES:
        assert len(payload) % 4 == 0
        return len(payload) // 4
    if f.type in FIXED64_TYPES:
        assert len(payload) % 8 == 0
        return len(payload) // 8
    pos, n = 0, 0
    while pos < len(payload):
        _, pos, _ = read_varint(payload, pos)
        n += 1
    return n


def wire_problems(buf, desc, path):
    """Check the raw encoding of a message against its descriptor: only known fields, in
    field-number order, each with its type's wire type, repeated numerics packed (one record
    holding every element), int32/enum negatives as 10-byte varints, sub-messages recursively."""
    out = []
    fields = {f.number: f for f in desc.fields}
    last = 0
    seen = {}
    for num, wt, payload, n in records(buf):
        f = fields.get(num)
        if f is None:
            out.append(f"{path}: unknown field {num}")
            continue
        p = f"{path}.{f.name}"
        if num < last:
            out.append(f"{p}: field {num} after field {last} (not in field-number order)")
        last = num
        seen[num] = seen.get(num, 0) + 1
        if packable(f):
            if wt != WT_LEN:
                out.append(f"{p}: repeated {TYPE_NAMES[f.type]} not packed (wire type {wt})")
            elif seen[num] > 1:
                out.append(f"{p}: packed field split into several records")
            continue
        want_wt = expected_wire_type(f)
        if wt != want_wt:
            out.append(f"{p}: wire type {wt}, expected {want_wt}")
            continue
        if f.type in (FD.TYPE_INT32, FD.TYPE_ENUM) and 2**31 <= payload < 2**64 - 2**31:
            # A negative int32 must be sign-extended to 64 bits (a 10-byte varint).
            out.append(f"{p}: int32 varint {payload:#x} ({n} bytes) is not sign-extended")
        if f.type == FD.TYPE_MESSAGE:
            out += wire_problems(payload, f.message_type, p)
    return out


def packed_fields(msg, path=""):
    """(path, field, element count) of every non-empty packed field in a parsed message."""
    out = []
    for f, v in msg.ListFields():
        p = f"{path}.{f.name}"
        if packable(f):
            out.append((p, f, len(v)))
        elif f.type == FD.TYPE_MESSAGE and not is_map(f):
            for i, sub in enumerate(v if f.label == FD.LABEL_REPEATED else [v]):
                out += packed_fields(sub, f"{p}[{i}]")
    return out


def packed_records(buf, desc, path=""):
    """(path, field, element count) of every packed record in raw bytes (same walk order)."""
    out = []
    fields = {f.number: f for f in desc.fields}
    counts = {}
    for num, wt, payload, _ in records(buf):
        f = fields[num]
        p = f"{path}.{f.name}"
        if packable(f) and wt == WT_LEN:
            out.append((p, f, packed_count(f, payload)))
        elif f.type == FD.TYPE_MESSAGE and not is_map(f):
            i = counts.get(num, 0)
            counts[num] = i + 1
            out += packed_records(payload, f.message_type, f"{p}[{i}]")
    return out


# ---- running the C tool ----

def run_tool(*args, check=True):
    if TOOL is None or not TOOL.exists():
        pytest.skip("proto-roundtrip not built (set MANTA_BUILD_DIR)")
    p = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=60)
    assert p.returncode not in (86, 87), f"sanitizer report:\n{p.stderr}"
    assert "ERROR: AddressSanitizer" not in p.stderr, p.stderr
    assert "runtime error:" not in p.stderr, p.stderr
    if check:
        assert p.returncode == 0, f"proto-roundtrip {' '.join(map(str, args))}: {p.stderr}"
    return p


def c_fill(name, tmp_path):
    out = tmp_path / "c-fill.bin"
    run_tool("fill", name, out)
    return out.read_bytes()


def c_echo(name, data, tmp_path, tag="echo"):
    src, dst = tmp_path / f"{tag}-in.bin", tmp_path / f"{tag}-out.bin"
    src.write_bytes(data)
    run_tool("echo", name, src, dst)
    return dst.read_bytes()


# ---- coverage of the C table ----

def c_list():
    return run_tool("list").stdout.split()


def test_table_covers_every_message_in_proto():
    listed = c_list()
    assert len(listed) == len(set(listed)), "duplicates in the table of proto-roundtrip"
    missing = sorted(set(ALL_NAMES) - set(listed))
    extra = sorted(set(listed) - set(ALL_NAMES))
    assert not missing, f"message types of proto/ missing from proto-roundtrip's table: {missing}"
    assert not extra, f"proto-roundtrip lists types that proto/ does not define: {extra}"


def _c_name(full_name):
    """protoc-c's C name of a message descriptor: package and CamelCase names to lower_snake,
    joined with "__"."""
    parts = full_name.split(".")
    return "__".join(re.sub(r"(?<!^)(?=[A-Z])", "_", part).lower() for part in parts)


def test_table_covers_every_generated_descriptor():
    if not BUILD_DIR:
        pytest.skip("MANTA_BUILD_DIR not set")
    headers = list((pathlib.Path(BUILD_DIR) / "pb").rglob("*.pb-c.h"))
    assert headers, "no generated headers under build/pb"
    declared = set()
    for h in headers:
        declared |= set(re.findall(r"extern const ProtobufCMessageDescriptor (\w+)__descriptor;",
                                   h.read_text()))
    listed = {_c_name(n) for n in c_list()}
    assert declared == listed, (f"not in the table: {sorted(declared - listed)}; "
                                f"not generated: {sorted(listed - declared)}")


def test_no_real_oneof():
    """The contract has no oneof (protocol.md); every oneof is the synthetic one of `optional`."""
    for name, desc in MESSAGES.items():
        for o in desc.oneofs:
            assert len(o.fields) == 1 and o.name == "_" + o.fields[0].name, f"{name}.{o.name}"


# ---- per message type ----

@pytest.mark.parametrize("name", ALL_NAMES)
def test_c_fill_matches_rule(name, tmp_path):
    desc = MESSAGES[name]
    data = c_fill(name, tmp_path)
    want = filled(name)
    got = cls(desc).FromString(data)

    diffs = differences(got, want, name)
    assert not diffs, "C fill differs from the rule:\n  " + "\n  ".join(diffs)
    assert got == want

    # Every field the rule sets is present (so "equal" is not "both empty").
    for f in desc.fields:
        if f.label == FD.LABEL_REPEATED:
            assert len(getattr(got, f.name)) == N_REPEATED, f"{name}.{f.name}"
        elif f.has_presence:
            assert got.HasField(f.name), f"{name}.{f.name} absent"
        else:
            assert getattr(got, f.name) != zero_value(f), f"{name}.{f.name} at its default"

    problems = wire_problems(data, desc, name)
    assert not problems, "wire format:\n  " + "\n  ".join(problems)
    # Packed encoding: each non-empty repeated numeric is one record holding all its elements.
    assert packed_records(data, desc) == packed_fields(got), "packed records"

    if has_map(desc):
        # Map entry order is not part of the wire contract: the parsed maps are compared above.
        # The rule's keys happen to be in sorted order, which is what deterministic
        # serialisation writes, so the bytes agree too.
        assert got.SerializeToString(deterministic=True) == data
    else:
        assert got.SerializeToString() == data, "Python re-serialises C's bytes differently"


@pytest.mark.parametrize("name", ALL_NAMES)
def test_python_fill_echoes_through_c(name, tmp_path):
    desc = MESSAGES[name]
    sent = filled(name).SerializeToString()
    back = c_echo(name, sent, tmp_path)
    got = cls(desc).FromString(back)
    diffs = differences(got, cls(desc).FromString(sent), name)
    assert not diffs, "C echo changed the message:\n  " + "\n  ".join(diffs)
    if not has_map(desc):
        assert back == sent, "C re-encodes Python's bytes differently"
    assert not wire_problems(back, desc, name)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_default_message_echoes_through_c(name, tmp_path):
    desc = MESSAGES[name]
    sent = cls(desc)().SerializeToString()
    back = c_echo(name, sent, tmp_path)
    assert cls(desc).FromString(back) == cls(desc)()
    if desc.GetOptions().map_entry:
        # Google's protobuf always writes a map entry's key and value (here b"\n\0\x12\0");
        # protobuf-c treats the entry as an ordinary message and omits empty ones. Both parse
        # to the same entry.
        assert back == b""
    else:
        assert back == sent == b""


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if has_optional(MESSAGES[n])])
def test_optional_zero_presence_survives_c(name, tmp_path):
    """Optional fields present at their zero value (Swarm.iteration = 0, Task.network = "",
    empty updated_at, ...) stay present through protobuf-c (the synthetic-oneof case)."""
    desc = MESSAGES[name]
    msg = filled(name, optional_zero=True)
    sent = msg.SerializeToString()
    back = c_echo(name, sent, tmp_path)
    got = cls(desc).FromString(back)
    diffs = differences(got, msg, name)
    assert not diffs, "presence lost:\n  " + "\n  ".join(diffs)
    assert back == sent


def test_optional_zero_presence_swarm_bytes(tmp_path):
    swarms = pb("common.swarms_pb2")
    msg = swarms.Swarm(iteration=0, circular=0)
    msg.last_start.SetInParent()
    sent = msg.SerializeToString()
    assert sent == bytes([6 << 3 | 2, 0, 9 << 3, 0, 10 << 3, 0])
    back = c_echo("common.swarms.Swarm", sent, tmp_path)
    assert back == sent
    got = swarms.Swarm.FromString(back)
    assert got.HasField("iteration") and got.iteration == 0
    assert got.HasField("circular") and got.HasField("last_start")
    assert not got.HasField("last_stop")


def test_map_entry_with_empty_key_and_value(tmp_path):
    """A ProtoDict entry "" -> "": Google writes 0a 04 0a 00 12 00, protobuf-c 0a 00; both mean
    the same entry (map entry fields are read with their defaults)."""
    system = pb("common.system_pb2")
    msg = system.ProtoDict(content={"": "", "k": "v"})
    back = c_echo("common.system.ProtoDict", msg.SerializeToString(), tmp_path)
    assert dict(system.ProtoDict.FromString(back).content) == {"": "", "k": "v"}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_c_rejects_invalid_bytes(name, tmp_path):
    # Field 1, length-delimited, claims 5 bytes and has 1: invalid for every message type.
    src, dst = tmp_path / "bad.bin", tmp_path / "out.bin"
    src.write_bytes(b"\x0a\x05\x01")
    p = run_tool("echo", name, src, dst, check=False)
    assert p.returncode == 1
    assert f"not a valid {name} message" in p.stderr


def test_unknown_type_and_usage(tmp_path):
    p = run_tool("fill", "common.system.NoSuchThing", tmp_path / "x", check=False)
    assert p.returncode == 1 and 'unknown message type "common.system.NoSuchThing"' in p.stderr
    p = run_tool("echo", "common.system.Ok", tmp_path / "missing.bin", tmp_path / "x",
                 check=False)
    assert p.returncode == 1 and "missing.bin" in p.stderr
    assert run_tool("bogus", check=False).returncode == 2
    assert run_tool("result-query", "2147483648", tmp_path / "x", check=False).returncode == 1


# ---- ResultQuery.size: int32 carried in a uint32 field ----

def encode_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def betterproto_result_query(q, size):
    """The bytes betterproto writes for ResultQuery q whose `size` holds the int32 `size`.
    betterproto (not installed here) serialises fields in number order and encodes a varint
    field with encode_varint(value), which turns a negative value into value + 2**64 - so a
    negative size becomes a 10-byte varint even though the field is uint32. Google's protobuf
    cannot produce this from a ResultQuery (it refuses 2**64-1 for a uint32), so the bytes are
    built here: fields 1..5, then field 6, then field 7, each part by Python's serialiser."""
    rq = type(q)
    head = rq()
    head.CopyFrom(q)
    head.ClearField("size")
    head.ClearField("method")
    tail = rq(method=q.method)
    field6 = b"" if size == 0 else encode_varint(6 << 3 | WT_VARINT) + encode_varint(size % 2**64)
    return head.SerializeToString() + field6 + tail.SerializeToString()


@pytest.mark.parametrize("size", [-1, 0, 5, -2**31, 2**31 - 1])
def test_result_query_int32_size(size, tmp_path):
    results = pb("common.results_pb2")
    light = pb("node.light_service_pb2")
    out = tmp_path / "rq.bin"
    run_tool("result-query", size, out)
    data = out.read_bytes()

    want = filled("common.results.ResultQuery")
    assert data == betterproto_result_query(want, size)
    # Field 6's varint is exactly Google's int32 encoding of the same value (LightResultQuery
    # field 4 is an int32): sign-extended to 64 bits, 10 bytes when negative.
    int32_bytes = light.LightResultQuery(size=size).SerializeToString()[1:]
    if size:
        assert encode_varint(size % 2**64) == int32_bytes
        assert (len(int32_bytes) == 10) == (size < 0)
        assert bytes([6 << 3]) + int32_bytes in data

    # Python (like protobuf-c) reads the uint32 field as the low 32 bits of the varint...
    got = results.ResultQuery.FromString(data)
    assert got.size == size % 2**32
    if size == -1:
        assert got.size == 4294967295
    want.size = size % 2**32
    assert not differences(got, want, "ResultQuery")
    # ...and would re-encode it in 5 bytes, which is NOT what betterproto sends: Python's own
    # encoding of the uint32 value is not the reference for this field.
    if size < 0:
        assert got.SerializeToString() != data
        assert len(data) - len(got.SerializeToString()) == 5
    else:
        assert got.SerializeToString() == data
    # Python refuses the 64-bit value betterproto effectively writes.
    with pytest.raises(ValueError):
        results.ResultQuery(size=2**64 - 1)


def test_result_query_minus_one_exact_bytes(tmp_path):
    """The SDK default size -1 on an otherwise empty query: tag 0x30 and ff*9 01."""
    results = pb("common.results_pb2")
    data = betterproto_result_query(results.ResultQuery(), -1)
    assert data == bytes([0x30] + [0xFF] * 9 + [0x01])
    assert results.ResultQuery.FromString(data).size == 4294967295
