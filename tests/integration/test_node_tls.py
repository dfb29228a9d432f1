"""TLS to the manager (server-authenticated and mutual) and mutual TLS to the broker with the
reference's certificate folder layout (ca.crt, mqtt.crt, mqtt.key), with certificates the test
creates itself."""
import signal
import subprocess

import grpc
import pytest

from test_node_wire import TOKEN
from wire_env import Broker, FakeManager, Observer, RunningNode, free_port, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=manta-test-ca", cwd=d)
    ext = d / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, cn in (("server", "localhost"), ("client", "node")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", str(ext), cwd=d)
    # A second, unrelated CA: certificates from it must be refused.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
            "other.crt", "-days", "2", "-subj", "/CN=other-ca", cwd=d)
    return d


def tls_manager(broker, pki, require_client=False):
    creds = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.crt").read_bytes())],
        root_certificates=(pki / "ca.crt").read_bytes() if require_client else None,
        require_client_auth=require_client)
    return FakeManager(broker, token=TOKEN).start(credentials=creds)


def config(port, pki, extra_security="", extra=""):
    return (f'[identity]\nsecured_token = "{TOKEN}"\n'
            f'[network]\nmanager_host = "127.0.0.1"\nmanager_port = {port}\nconnect_timeout = 3\n'
            f'[containers]\nruntime = "process"\n'
            f'[mqtt]\nping_interval = 1\nuse_tls = false\n'
            f'[security]\nuse_tls = true\nca_file = "{pki}/ca.crt"\nserver_name = "localhost"\n'
            + extra_security + extra)


def test_manager_tls(node, tmp_path, pki):
    broker = Broker(tmp_path / "b").start()
    m = tls_manager(broker, pki)
    try:
        node.write_config("default", config(m.port, pki))
        rn = RunningNode(node)
        rn.wait_line("✓ Ready to execute tasks")
        assert m.named("RegisterNode")[0].metadata["authorization"] == TOKEN
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0
    finally:
        m.stop()
        broker.stop()


def test_manager_tls_wrong_ca_refused(node, tmp_path, pki):
    broker = Broker(tmp_path / "b").start()
    m = tls_manager(broker, pki)
    try:
        node.write_config("default", config(m.port, pki).replace(f"{pki}/ca.crt",
                                                                 f"{pki}/other.crt"))
        p = node.run("start", timeout=60)
        assert p.returncode == 1
        assert f"Error: Failed to connect to manager at 127.0.0.1:{m.port}" in p.stderr
        assert not m.calls  # nothing reached the application
    finally:
        m.stop()
        broker.stop()


def test_manager_mutual_tls(node, tmp_path, pki):
    broker = Broker(tmp_path / "b").start()
    m = tls_manager(broker, pki, require_client=True)
    try:
        # without a client certificate: refused
        node.write_config("default", config(m.port, pki))
        p = node.run("start", timeout=60)
        assert p.returncode == 1
        # with one: accepted
        node.write_config("default", config(
            m.port, pki, f'cert_file = "{pki}/client.crt"\nkey_file = "{pki}/client.key"\n'))
        rn = RunningNode(node)
        rn.wait_line("✓ Ready to execute tasks")
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0
    finally:
        m.stop()
        broker.stop()


def test_broker_mutual_tls_with_cert_folder(node, tmp_path, pki):
    # The reference's layout: security.use_tls turns on mutual TLS to the broker with
    # <cert_folder>/ca.crt, mqtt.crt and mqtt.key.
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    (certs / "mqtt.crt").write_bytes((pki / "client.crt").read_bytes())
    (certs / "mqtt.key").write_bytes((pki / "client.key").read_bytes())
    tls_port = free_port()
    broker = Broker(tmp_path / "b", extra_conf=(
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        "require_certificate true\n")).start()
    m = tls_manager(broker, pki)
    m.broker_port = tls_port
    m.broker_host = "localhost"
    obs = Observer(broker)  # plain listener, same broker
    try:
        node.write_config("default", config(m.port, pki).replace("use_tls = false\n", "") +
                          f'cert_folder = "{certs}"\n')
        rn = RunningNode(node)
        rn.wait_line("✓ Ready to execute tasks")
        wait_for(lambda: obs.on("manager/set_system_summary"), 10, what="a heartbeat over TLS")
        rn.signal(signal.SIGTERM)
        assert rn.wait() == 0
        # without the client certificate the broker refuses the node
        (certs / "mqtt.crt").unlink()
        (certs / "mqtt.key").unlink()
        p = node.run("start", timeout=60)
        assert p.returncode == 1
        assert "Error: Failed to connect to MQTT broker" in p.stderr
        assert f"Broker: localhost:{tls_port}" in p.stderr
    finally:
        obs.close()
        m.stop()
        broker.stop()
