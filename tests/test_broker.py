import subprocess

from hub.broker import Broker


def test_mosquitto_round_trip(broker: Broker) -> None:
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", "t/1", "-C", "1", "-W", "5"],
        stdout=subprocess.PIPE, text=True)
    # retained, so the order of sub and pub doesn't matter
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", "t/1", "-m", "hi", "-r"], check=True)
    out, _ = sub.communicate(timeout=10)
    assert out.strip() == "hi"
