"""The XDP program in the kernel, driven with BPF_PROG_TEST_RUN and crafted packets: every
forwarding decision equals the Python Maglev reference; everything else passes untouched."""

from __future__ import annotations

import ipaddress
import os
import random
import re
import socket
import struct
import subprocess
import tempfile

import pytest
import yaml

from dataplane import BPF_OBJECT, maglev
from dataplane.balancer import Balancer
from dataplane.config import load
from dataplane.control import Control, vip_key
from dataplane.packets import checksum, flow_of, packet
from dataplane.structs import RING_SIZE, SIZES
from tests.support.xdp import why_no_bpf

pytestmark = pytest.mark.root  # BPF programs: root and a kernel that loads them

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX = 0, 1, 2, 3
LB_MAC = "02:00:00:00:00:01"

CONFIG = {
    "name": "testrun", "interface": "lo", "ipip_source": "192.0.2.1",
    "vips": [
        {"address": "198.51.100.1", "port": 80, "protocol": "tcp", "backends": [
            {"address": "192.0.2.11", "mac": "02:00:00:00:00:11", "weight": 1},
            {"address": "192.0.2.12", "mac": "02:00:00:00:00:12", "weight": 1},
            {"address": "192.0.2.13", "mac": "02:00:00:00:00:13", "weight": 2}]},
        {"address": "2001:db8::100", "port": 53, "protocol": "udp", "backends": [
            {"address": "2001:db8::11", "mac": "02:00:00:00:01:11"},
            {"address": "2001:db8::12", "mac": "02:00:00:00:01:12"}]},
        {"address": "198.51.100.2", "port": 443, "protocol": "tcp", "mode": "ipip", "backends": [
            {"address": "203.0.113.21", "mac": "02:00:00:00:02:21"}]},
        {"address": "198.51.100.3", "port": 80, "protocol": "tcp", "backends": []},
        {"address": "198.51.100.4", "port": 53, "protocol": "udp", "conntrack": False, "backends": [
            {"address": "192.0.2.41", "mac": "02:00:00:00:04:41"},
            {"address": "192.0.2.42", "mac": "02:00:00:00:04:42"}]},
    ],
}
MACS = {b["mac"]: b["address"] for v in CONFIG["vips"] for b in v["backends"]}


def write_config(doc: dict) -> str:
    path = os.path.join(tempfile.mkdtemp(), "dataplane.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path


@pytest.fixture(scope="module")
def lb():
    reason = why_no_bpf()
    if reason:
        pytest.skip(reason)
    balancer = Balancer("testrun", pin=False)
    control = Control(balancer)
    control.apply(load(write_config(CONFIG)))
    yield balancer, control
    balancer.close()


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def expected_backend(control: Control, label: str, src: str, dst: str, proto: str, sport: int, dport: int) -> str:
    h = maglev.flow_hash(*flow_of(src, dst, proto, sport, dport))
    return control.tables[label][h % RING_SIZE]


def test_struct_sizes_match_the_c_header():
    out = subprocess.run(["bpftool", "btf", "dump", "file", BPF_OBJECT, "format", "raw"], capture_output=True,
                         text=True, check=True).stdout
    sizes = {m[0]: int(m[1]) for m in re.findall(r"STRUCT '(\w+)' size=(\d+)", out)}
    for name, size in SIZES.items():
        assert sizes[name] == size, name
    from dataplane import structs

    for name, cls in (("vip_key", structs.VipKey), ("vip_meta", structs.VipMeta), ("backend", structs.Backend),
                      ("flow_key", structs.FlowKey), ("flow_value", structs.FlowValue),
                      ("counter", structs.Counter), ("lb_config", structs.LbConfig)):
        import ctypes

        assert ctypes.sizeof(cls) == sizes[name], name


@pytest.mark.parametrize(("label", "vip", "proto", "dport", "client"), [
    ("198.51.100.1:80/tcp", "198.51.100.1", "tcp", 80, "203.0.113.0/24"),
    ("[2001:db8::100]:53/udp", "2001:db8::100", "udp", 53, "2001:db8:c000::/48"),
])
def test_thousands_of_flows_match_the_python_reference(lb, label, vip, proto, dport, client):
    balancer, control = lb
    rnd = random.Random(label)
    net = ipaddress.ip_network(client)
    counts: dict[str, int] = {}
    for _ in range(3000):
        src = str(net.network_address + rnd.randrange(net.num_addresses))
        sport = rnd.randrange(1024, 65536)
        frame = packet(src, vip, proto, sport, dport, dst_mac=LB_MAC)
        action, out, _ = balancer.test_run(frame)
        assert action == XDP_TX
        got = MACS[mac_text(out[:6])]
        assert got == expected_backend(control, label, src, vip, proto, sport, dport)
        assert mac_text(out[6:12]) == LB_MAC  # sent from us
        assert out[12:] == frame[12:]  # nothing above Ethernet is touched (DSR)
        counts[got] = counts.get(got, 0) + 1
    if label.startswith("198"):
        share = counts["192.0.2.13"] / 3000
        assert 0.45 < share < 0.55, counts  # weight 2 of 4


def test_non_vip_traffic_passes_untouched(lb):
    balancer, _ = lb
    for frame in (packet("203.0.113.5", "198.51.100.9", "tcp", 1234, 80),  # another address
                  packet("203.0.113.5", "198.51.100.1", "tcp", 1234, 81),  # the VIP, another port
                  packet("203.0.113.5", "198.51.100.1", "udp", 1234, 80)):  # the VIP, another protocol
        action, out, _ = balancer.test_run(frame)
        assert action == XDP_PASS and out == frame


def test_malformed_and_special_packets_pass(lb):
    balancer, _ = lb
    good = packet("203.0.113.5", "198.51.100.1", "tcp", 1234, 80)
    for cut in (14, 20, 33, 34, 40, 53):  # cut inside the IPv4 and TCP headers
        action, _, _ = balancer.test_run(good[:cut])
        assert action == XDP_PASS, cut
    bad_ihl = bytearray(good)
    bad_ihl[14] = 0x44  # IHL 4: impossible
    assert balancer.test_run(bytes(bad_ihl))[0] == XDP_PASS
    frag = packet("203.0.113.5", "198.51.100.1", "tcp", 1234, 80, frag=0x2000)  # MF: a first fragment
    assert balancer.test_run(frag)[0] == XDP_PASS
    later = packet("203.0.113.5", "198.51.100.1", "tcp", 1234, 80, frag=0x0010)  # offset 128 octets
    assert balancer.test_run(later)[0] == XDP_PASS
    icmp = bytearray(good)
    icmp[23] = 1  # protocol ICMP (e.g. fragmentation needed for the VIP): the kernel's
    assert balancer.test_run(bytes(icmp))[0] == XDP_PASS
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    assert balancer.test_run(arp)[0] == XDP_PASS


def test_vip_without_backends_drops(lb):
    balancer, _ = lb
    assert balancer.test_run(packet("203.0.113.5", "198.51.100.3", "tcp", 1234, 80))[0] == XDP_DROP


def test_ipip_encapsulation(lb):
    balancer, _ = lb
    frame = packet("203.0.113.5", "198.51.100.2", "tcp", 4321, 443, dst_mac=LB_MAC)
    action, out, _ = balancer.test_run(frame)
    assert action == XDP_TX
    assert mac_text(out[:6]) == "02:00:00:00:02:21"
    outer = out[14:34]
    assert outer[0] == 0x45 and outer[9] == socket.IPPROTO_IPIP
    assert socket.inet_ntoa(outer[12:16]) == "192.0.2.1" and socket.inet_ntoa(outer[16:20]) == "203.0.113.21"
    assert struct.unpack("!H", outer[2:4])[0] == len(frame) - 14 + 20
    assert checksum(outer) == 0  # valid header checksum
    assert out[34:] == frame[14:]  # the original packet, whole, inside


def test_connection_table_keeps_flows_when_backends_change(lb):
    balancer, control = lb
    label, vip = "198.51.100.1:80/tcp", "198.51.100.1"
    rnd = random.Random(7)
    flows = [(f"203.0.113.{rnd.randrange(1, 255)}", rnd.randrange(1024, 65536)) for _ in range(400)]
    before = {}
    for src, sport in flows:
        _, out, _ = balancer.test_run(packet(src, vip, "tcp", sport, 80, dst_mac=LB_MAC))
        before[(src, sport)] = MACS[mac_text(out[:6])]
    grown = dict(CONFIG)
    grown["vips"] = [dict(CONFIG["vips"][0], backends=[*CONFIG["vips"][0]["backends"],
                                                       {"address": "192.0.2.14", "mac": "02:00:00:00:00:14"}]),
                     *CONFIG["vips"][1:]]
    MACS["02:00:00:00:00:14"] = "192.0.2.14"
    control.apply(load(write_config(grown)))
    remapped = sum(1 for src, sport in flows
                   if expected_backend(control, label, src, vip, "tcp", sport, 80) != before[(src, sport)])
    assert remapped > 40  # Maglev moved some of these flows' table entries to the new backend...
    for src, sport in flows:
        _, out, _ = balancer.test_run(packet(src, vip, "tcp", sport, 80, dst_mac=LB_MAC))
        assert MACS[mac_text(out[:6])] == before[(src, sport)]  # ...but known flows stay put
    new = [(f"198.51.100.{rnd.randrange(1, 255)}", rnd.randrange(1024, 65536)) for _ in range(400)]
    for src, sport in new:  # new flows follow the new table
        _, out, _ = balancer.test_run(packet(src, vip, "tcp", sport, 80, dst_mac=LB_MAC))
        assert MACS[mac_text(out[:6])] == expected_backend(control, label, src, vip, "tcp", sport, 80)
    control.apply(load(write_config(CONFIG)))  # the new backend leaves again: its flows re-pick
    for src, sport in new:
        _, out, _ = balancer.test_run(packet(src, vip, "tcp", sport, 80, dst_mac=LB_MAC))
        assert MACS[mac_text(out[:6])] != "192.0.2.14"


def test_stateless_vip_keeps_no_connection_state(lb):
    balancer, control = lb
    from dataplane.structs import FlowKey, pack_addr

    label = "198.51.100.4:53/udp"
    for sport in range(20000, 20200):
        _, out, _ = balancer.test_run(packet("203.0.113.9", "198.51.100.4", "udp", sport, 53, dst_mac=LB_MAC))
        assert MACS[mac_text(out[:6])] == expected_backend(control, label, "203.0.113.9", "198.51.100.4", "udp",
                                                           sport, 53)
    src, family = pack_addr("203.0.113.9")
    dst, _ = pack_addr("198.51.100.4")
    key = FlowKey(src=src, dst=dst, sport=socket.htons(20000), dport=socket.htons(53), proto=17, family=family)
    assert balancer.conn(key) is None  # nothing remembered


def test_counters_per_vip_and_backend(lb):
    balancer, control = lb
    vid = control.vip_ids[bytes(vip_key(load(write_config(CONFIG)).vips[0]))]
    before = balancer.counters("vip_stats", vid)
    frame = packet("203.0.113.77", "198.51.100.1", "tcp", 5555, 80, dst_mac=LB_MAC)
    for _ in range(10):
        balancer.test_run(frame)
    after = balancer.counters("vip_stats", vid)
    assert after[0] - before[0] == 10 and after[1] - before[1] == 10 * len(frame)


def test_backends_down_in_the_store_leave_the_table(lb):
    balancer, control = lb
    cfg = load(write_config(CONFIG))
    down = next(b for b in cfg.vips[0].backends if b.address == "192.0.2.13")
    control.apply(cfg, {down.check: False})
    try:
        assert "192.0.2.13" not in set(control.tables["198.51.100.1:80/tcp"])
        assert not balancer.get_backend(control.backend_id(down)).flags  # its known flows re-pick too
        for sport in range(41000, 41300):
            _, out, _ = balancer.test_run(packet("198.51.100.250", "198.51.100.1", "tcp", sport, 80, dst_mac=LB_MAC))
            assert MACS[mac_text(out[:6])] != "192.0.2.13"
    finally:
        control.apply(cfg)
