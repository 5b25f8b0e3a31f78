"""Apache Kafka as a local one-node KRaft broker, for a developer machine, the demo and the tests.

The broker's jars are pinned by ``deploy/kafka/pom.xml`` and copied by Maven into a cache folder
named after the Kafka version (:func:`fetch_kafka`); :func:`start_kafka_broker` formats a log
directory the first time and runs ``kafka.Kafka`` from those jars with a JDK. The log directory
is real: topics, committed offsets and transactions survive a restart of the broker on it, and
compacted topics are compacted by the broker.

One node, so every replication factor and in-sync minimum is 1, and the internal topics get few
partitions: the first consumer group and the first transaction are then set up in well under a
second instead of creating 50 partitions each.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from streams.kafka_edge.topics import BrokerError

POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
CACHE = Path.home() / ".cache" / "streamrec"
COMPLETE = ".complete"  # written last into the jar folder: a fetch cut short is fetched again
JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-Djava.awt.headless=true")  # fmt: skip

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = warn
"""


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version the project pins (``kafka.version`` in deploy/kafka/pom.xml)."""
    if not pom.is_file():
        raise BrokerError(f"no {pom}: Apache Kafka is fetched from a source checkout of streamrec; "
                          "run with --engine tansu, or point --bootstrap at a running Kafka")
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    try:
        version = ElementTree.parse(pom).find("m:properties/m:kafka.version", namespace)
    except ElementTree.ParseError as exc:
        raise BrokerError(f"{pom} is not valid XML: {exc}") from None
    if version is None or not (version.text or "").strip():
        raise BrokerError(f"{pom} names no kafka.version property")
    return version.text.strip()


def kafka_jars(cache: Path = CACHE) -> Path:
    """The folder the pinned version's jars are fetched into."""
    return cache / f"kafka-{kafka_version()}"


def java_missing() -> str | None:
    """Why this machine cannot run Apache Kafka, or None when it can (a JDK 17 or newer)."""
    java = shutil.which("java")
    if java is None:
        return "no java on PATH (Apache Kafka 4 needs a JDK 17 or newer)"
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    digits = out.split('"')[1].split(".")[0] if '"' in out else ""
    if not digits.isdigit() or int(digits) < 17:
        return f"Apache Kafka 4 needs Java 17 or newer; java -version says: {out.strip()!r}"
    return None


def is_fetched(jars: Path) -> bool:
    return (jars / COMPLETE).is_file()


def fetch_kafka(jars: Path) -> Path:
    """Copy the pinned broker's jars into ``jars`` with Maven, unless a fetch completed there."""
    if is_fetched(jars):
        return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH: it fetches Apache Kafka's jars from Maven "
                          "Central; install it, or run with --engine tansu")
    partial = jars.with_name(jars.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={partial}", "-DincludeScope=runtime"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(f"fetching Apache Kafka with Maven failed ({done.returncode}):\n"
                          f"{(done.stdout + done.stderr)[-2000:]}")
    (partial / COMPLETE).write_text(kafka_version() + "\n")
    shutil.rmtree(jars, ignore_errors=True)
    partial.rename(jars)
    return jars


def cluster_id(draw: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A new KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    An id that begins with '-' is drawn again, as Kafka's own ``Uuid.randomUuid`` does: the
    storage tool would read it as an option and refuse to format.
    """
    while True:
        drawn = base64.urlsafe_b64encode(draw().bytes).decode().rstrip("=")
        if not drawn.startswith("-"):
            return drawn


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class SaslListener:
    """A second listener that requires SASL (PLAIN and both SCRAMs) from ``users`` (name to
    password): a broker that enforces what the security settings ask for, for the tests and
    for trying credentials locally."""

    port: int
    users: Mapping[str, str]
    name = "SASL_PLAINTEXT"

    def properties(self) -> dict[str, object]:
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in self.users.items())
        return {
            "sasl.enabled.mechanisms": ",".join(("PLAIN", *SCRAM_MECHANISMS)),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f"{plain_users};",
            **{f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config":
               "org.apache.kafka.common.security.scram.ScramLoginModule required;"
               for mechanism in SCRAM_MECHANISMS},
        }

    def format_arguments(self) -> list[str]:
        """StorageTool's ``--add-scram`` for each user and mechanism (KRaft keeps SCRAM
        credentials in its metadata, written when the log directory is formatted)."""
        return [argument for name, password in self.users.items()
                for mechanism in SCRAM_MECHANISMS
                for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")]


@dataclass(frozen=True)
class TlsListener:
    """A listener that speaks TLS only, with the broker's key and certificate chain in one PEM
    file (a PKCS#8 key, unencrypted) and, for mutual TLS, the CA that signs client
    certificates: so the TLS settings meet a broker that checks them."""

    port: int
    keystore: Path  # PEM: the broker's private key, then its certificate chain
    client_ca: Path | None = None  # PEM: require client certificates signed by this CA
    name = "SSL"

    def properties(self) -> dict[str, object]:
        prefix = "listener.name.ssl."
        out: dict[str, object] = {prefix + "ssl.keystore.type": "PEM",
                                  prefix + "ssl.keystore.location": self.keystore}
        if self.client_ca is not None:
            out.update({prefix + "ssl.client.auth": "required",
                        prefix + "ssl.truststore.type": "PEM",
                        prefix + "ssl.truststore.location": self.client_ca})
        return out

    def format_arguments(self) -> list[str]:
        return []


Listener = SaslListener | TlsListener


def server_properties(
    port: int, controller_port: int, log_dir: Path, secured: Sequence[Listener] = ()
) -> str:
    host = "127.0.0.1"
    listeners = {"PLAINTEXT": port, "CONTROLLER": controller_port}
    listeners.update((listener.name, listener.port) for listener in secured)
    extra: dict[str, object] = {}
    for listener in secured:
        extra.update(listener.properties())
    advertised = {name: at for name, at in listeners.items() if name != "CONTROLLER"}
    settings = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": ",".join(f"{name}://{host}:{at}" for name, at in listeners.items()),
        "advertised.listeners": ",".join(f"{name}://{host}:{at}" for name, at in advertised.items()),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(
            f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}" for name in listeners),
        "log.dirs": str(log_dir),
        "num.partitions": 1,
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 4,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 4,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        # a transaction left open past its timeout (a zombie's) blocks read_committed readers
        # until the broker's sweep aborts it: sweep every 2 s instead of 10
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": 2000,
        # a deleted user's bytes leave the topics within the bounds the topic configs set
        # (streams/kafka_edge/topics.py), not 15 s or 5 min after: look for work every second,
        # from a second after the start (not 30)
        "log.cleaner.backoff.ms": 1000,
        "log.retention.check.interval.ms": 1000,
        "log.initial.task.delay.ms": 1000,
        **extra,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def start_kafka_broker(
    port: int,
    controller_port: int,
    data_dir: Path,
    jars: Path,
    log_path: Path | None = None,
    secured: Sequence[Listener] = (),
) -> subprocess.Popen:
    """Run Apache Kafka on 127.0.0.1:port with its log directory under ``data_dir`` (formatted
    the first time; a broker started again on the same folder keeps its topics), plus the
    ``secured`` listeners. The caller waits until it answers and stops it with
    ``stop_process``."""
    if not is_fetched(jars):
        raise BrokerError(f"Apache Kafka's jars are not in {jars}: run `streamrec broker --fetch` "
                          "(or make install) first")
    java = shutil.which("java")
    if java is None:
        raise BrokerError(java_missing() or "no java")
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "log"
    config = data_dir / "server.properties"
    config.write_text(server_properties(port, controller_port, log_dir, secured))
    (data_dir / "log4j2.properties").write_text(LOG4J2)
    classpath = ["-cp", f"{jars}/*", f"-Dlog4j2.configurationFile={data_dir / 'log4j2.properties'}"]
    if not (log_dir / "meta.properties").is_file():
        formatted = subprocess.run(
            [java, *classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id(),
             "-c", str(config), *(a for one in secured for a in one.format_arguments())],
            capture_output=True, text=True)  # fmt: skip
        if formatted.returncode != 0:
            raise BrokerError(f"formatting Kafka's log directory {log_dir} failed:\n"
                              f"{(formatted.stdout + formatted.stderr)[-2000:]}")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [java, *JVM_OPTIONS, *classpath, "kafka.Kafka", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path:
            out.close()  # the broker has its own descriptor
