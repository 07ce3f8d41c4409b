"""Config: a TOML file plus HUB_* variables; a bad one names the file, the key and the rule."""

from pathlib import Path

import pytest

from hub.config import ConfigError, load_config


def test_defaults_file_and_environment(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text('command_timeout = 8\n[mqtt]\nurl = "mqtt://broker.lan:1884"\n[http]\nport = 9000\n')
    c = load_config(f, environ={"HUB_HTTP_PORT": "9100", "HUB_DISCOVERY_INTERFACES": "127.0.0.1, 10.0.0.2",
                                "HUB_DATA": str(tmp_path / "d")})
    assert (c.mqtt.host, c.mqtt.port, c.http.port, c.command_timeout) == ("broker.lan", 1884, 9100, 8)
    assert c.discovery.interfaces == ["127.0.0.1", "10.0.0.2"] and c.data_dir == tmp_path / "d"


@pytest.mark.parametrize("text,env,expect", [
    ("[http]\nport = 70000\n", {}, "hub.toml: http.port: Input should be less than or equal to 65535"),
    ('[mqtt]\nurl = "http://x"\n', {}, "hub.toml: mqtt.url: Value error, expected mqtt://host[:port]"),
    ("[mqtt]\nhots = 1\n", {}, "hub.toml: mqtt.hots: unknown key"),
    ("", {"HUB_HTTP_PORT": "eighty"}, "environment variable HUB_HTTP_PORT: http.port: Input should be a valid integer"),
    ("command_timeout = -1\n", {}, "hub.toml: command_timeout: Input should be greater than 0"),
])
def test_bad_config_says_where_and_what(tmp_path: Path, text: str, env: dict, expect: str) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(f, environ=env)
    assert expect in str(e.value).replace(str(tmp_path) + "/", "")


def test_not_toml(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text("[http\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f, environ={})


def test_hub_run_refuses_a_bad_config(tmp_path: Path) -> None:
    import subprocess
    import sys

    f = tmp_path / "hub.toml"
    f.write_text("[http]\nport = 0\n")
    r = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--config", str(f), "--data", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "http.port" in r.stderr and str(f) in r.stderr


SECRET = "hunter2-Do-Not-Print"


@pytest.mark.parametrize("text,env,expect", [
    # a SecretStr field with a value of the wrong type
    (f"[mqtt]\npassword = [\"{SECRET}\"]\n", {}, "hub.toml: mqtt.password: Input should be a valid string"),
    # a misspelt secret key: unknown, and its value is not repeated
    (f'[mqtt]\npasswd = "{SECRET}"\n', {}, "hub.toml: mqtt.passwd: unknown key"),
    # a free-form driver table that is not a table (PJLink's password by mistake)
    (f'[drivers]\npjlink = "{SECRET}"\n', {}, "hub.toml: drivers.pjlink: Input should be a valid dictionary"),
    # a secret given by environment to a key that does not exist
    ("", {"HUB_MQTT_TOKEN": SECRET}, "environment variable HUB_MQTT_TOKEN: mqtt.token: unknown key"),
    # a URL carrying a password, with a bad port
    ("", {"HUB_MQTT_URL": f"mqtt://hub:{SECRET}@broker:99999"}, "mqtt.url: Value error, expected mqtt://host[:port]"),
    # a whole section of the wrong type, holding a password
    (f'mqtt = ["{SECRET}"]\n', {}, "hub.toml: mqtt: Input should be a valid dictionary"),
])
def test_config_errors_never_echo_a_secret(tmp_path: Path, text: str, env: dict, expect: str) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(f, environ=env)
    message = str(e.value).replace(str(tmp_path) + "/", "")
    assert expect in message
    assert SECRET not in message and "hunter2" not in message


def test_a_bad_plain_value_is_still_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"log_level: .* \(got 'loud'\)"):
        load_config(None, environ={"HUB_LOG_LEVEL": "loud"})


def test_the_pjlink_password_variable_is_not_a_config_key(tmp_path: Path) -> None:
    """README: `HUB_PJLINK_PASSWORD` is the PJLink driver's fallback password; the hub still starts."""
    c = load_config(None, environ={"HUB_PJLINK_PASSWORD": SECRET, "HUB_DATA": str(tmp_path)})
    assert c.data_dir == tmp_path


def test_hub_run_never_prints_a_secret(tmp_path: Path) -> None:
    import subprocess
    import sys

    f = tmp_path / "hub.toml"
    f.write_text(f'[mqtt]\npassword = 42\n[drivers.pjlink]\npasswords = "{SECRET}"\n[drivers]\nhomie = "{SECRET}"\n')
    r = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--config", str(f), "--data", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "mqtt.password" in r.stderr and "drivers.homie" in r.stderr
    assert SECRET not in r.stderr + r.stdout and "42" not in r.stderr.replace(str(tmp_path), "")
