"""Item 5: probes the deployer sends beyond loopback go through httpx, over TLS with a CA.

A region host (``r1``) serves HTTPS on its own address with a certificate of
a private CA; the gate's prober runs on the developer machine. The server
answers with the User-Agent it was sent: httpx names itself, the
hand-written loopback client sends none.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

from tests.multihost.netns import call_in

ROOT = Path(__file__).resolve().parents[2]

SERVE_TLS = """
import http.server, json, ssl, sys

class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"ua": self.headers.get("user-agent"), "path": self.path,
                           "deployment": self.headers.get("x-vega-deployment")}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

server = http.server.ThreadingHTTPServer((sys.argv[1], 8443), Echo)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""

PROBE = """
import json, sys
from vega_dag.rollout.probes import probe_all
answers = probe_all([(sys.argv[1], "/api/a"), (sys.argv[1], "/api/b"), (sys.argv[1], "/api/c")],
                    timeout=5.0, deployment="dpl_x")
print(json.dumps([[a.response[0], json.loads(a.response[2]), a.kept_alive] if a.response
                  else [None, str(a.error), False] for a in answers]))
"""


def _ca_and_cert(base: Path, address: str) -> tuple[Path, Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vega test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = base / "ca.pem", base / "region.pem", base / "region.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


def _listening(address: str) -> bool:
    import socket

    try:
        socket.create_connection((address, 8443), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_gate_probes_to_a_region_on_another_host_go_through_httpx_over_tls(cluster, tmp_path):
    r1, dev = cluster.net.hosts["r1"], cluster.net.hosts["dev"]
    ca, cert, key = _ca_and_cert(tmp_path, r1.address)
    serve = [sys.executable, "-c", SERVE_TLS, r1.address, str(cert), str(key)]
    server = cluster.net.popen(r1, serve)
    try:
        deadline = time.monotonic() + 20
        while not call_in(dev.ns, _listening, r1.address):
            assert server.poll() is None and time.monotonic() < deadline, "TLS server did not start"
            time.sleep(0.1)
        url = f"https://{r1.address}:8443"
        env = {**os.environ, "VEGA_DAG_REGIONS_CA": str(ca)}
        probe = [sys.executable, "-c", PROBE, url]
        done = cluster.net.run(dev, probe, cwd=ROOT, env=env, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        answers = json.loads(done.stdout)
        assert [a[0] for a in answers] == [200, 200, 200], answers
        assert all(a[1]["ua"].startswith("python-httpx/") for a in answers)
        assert [a[1]["path"] for a in answers] == ["/api/a", "/api/b", "/api/c"]
        assert {a[1]["deployment"] for a in answers} == {"dpl_x"}

        # Without the CA the certificate is refused: an error, never an answer.
        bare = cluster.net.run(dev, probe, cwd=ROOT, timeout=60)
        assert bare.returncode == 0, bare.stderr[-2000:]
        refused = json.loads(bare.stdout)
        assert all(a[0] is None and "CERTIFICATE_VERIFY_FAILED" in a[1] for a in refused)
    finally:
        server.kill()
        server.wait(5)
