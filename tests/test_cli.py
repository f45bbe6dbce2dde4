"""The CLI: every exit code, clean JSON on stdout, atomic --output, schemas, validate."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from croctl import __version__
from croctl.cli import app
from croctl.schemas import load_schema
from tests.conftest import ROOT, write_csv

runner = CliRunner()
PLANS = ROOT / "plans"


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    ("plan", "code", "verdict"),
    [("checkout", 0, "ship"), ("leadgen", 1, "do_not_ship"), ("saas", 4, "inconclusive")],
)
def test_sample_plans_exit_with_their_verdict(plan, code, verdict):
    result = run("evaluate", str(PLANS / f"{plan}.yaml"), "--format", "json")
    assert result.exit_code == code, result.stderr
    report = json.loads(result.stdout)  # stdout is JSON and nothing else
    assert report["verdict"] == verdict and report["exit_code"] == code
    jsonschema.validate(report, load_schema("report"))


def test_checkout_ships_the_arm_whose_guardrail_holds():
    report = json.loads(run("evaluate", str(PLANS / "checkout.yaml"), "-f", "json").stdout)
    assert report["ship_variant"] == "one_click"
    refund = next(m for m in report["metrics"] if m["name"] == "refund_rate")
    states = {c["variant"]: c["guardrail"] for c in refund["comparisons"]}
    assert states == {"one_click": "holds", "express_pay": "fails"}
    assert any("express_pay fails" in r for r in report["reasons"])


def _srm_broken(tmp_path: Path, make_plan) -> Path:
    exposures = [
        f"u{i},{'control' if i % 5 else 'treatment'},2026-10-02T00:00:00Z" for i in range(1000)
    ]
    write_csv(tmp_path / "exposures.csv", "user_id,variant,exposed_at", exposures)
    write_csv(
        tmp_path / "events.csv",
        "user_id,ts,event_name",
        [f"u{i},2026-10-03T00:00:00Z,purchase" for i in range(0, 1000, 7)],
    )
    return make_plan()


def test_sample_ratio_mismatch_is_invalid_exit_5(tmp_path, make_plan):
    result = run("evaluate", str(_srm_broken(tmp_path, make_plan)), "--format", "json")
    assert result.exit_code == 5
    report = json.loads(result.stdout)
    srm = next(c for c in report["checks"] if c["name"] == "srm")
    assert srm["status"] == "fail" and srm["p_value"] < 1e-6
    assert report["verdict"] == "invalid"


def test_table_and_json_agree_on_exit_code(tmp_path, make_plan):
    plan = str(_srm_broken(tmp_path, make_plan))
    assert run("evaluate", plan).exit_code == run("evaluate", plan, "-f", "json").exit_code == 5


def test_table_output_shows_banner_checks_and_segments():
    result = run("evaluate", str(PLANS / "checkout.yaml"))
    assert result.exit_code == 0
    for text in ("SHIP", "ship: one_click", "Trust checks", "srm", "Segments"):
        assert text in result.stdout


def test_markdown_output_has_the_same_verdict(tmp_path):
    result = run("evaluate", str(PLANS / "leadgen.yaml"), "-f", "markdown")
    assert result.exit_code == 1
    assert "**do not ship**" in result.stdout and "| spam_lead_share |" in result.stdout


def test_output_file_is_written_and_stdout_stays_empty(tmp_path):
    output = tmp_path / "out.json"
    result = run("evaluate", str(PLANS / "saas.yaml"), "-f", "json", "-o", str(output))
    assert result.exit_code == 4 and result.stdout == ""
    assert json.loads(output.read_text())["verdict"] == "inconclusive"
    assert not list(tmp_path.glob(".out.json.*"))  # no temporary file left behind


def test_output_over_an_input_is_refused():
    result = run(
        "evaluate",
        str(PLANS / "leadgen.yaml"),
        "-o",
        str(ROOT / "sample_data" / "leadgen" / "crm.csv"),
    )
    assert result.exit_code == 2 and "would overwrite an input" in result.stderr


def test_unwritable_output_is_a_data_error(tmp_path):
    result = run("evaluate", str(PLANS / "saas.yaml"), "-o", str(tmp_path / "no" / "dir.json"))
    assert result.exit_code == 3 and "cannot write" in result.stderr


def test_output_to_a_pipe_is_written_through_not_replaced(tmp_path):
    """Renamed over, `-o /dev/null` made /dev/null a regular file (as root, CI's usual user)."""
    import stat
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()))
    reader.start()
    result = run("evaluate", str(PLANS / "saas.yaml"), "-f", "json", "-o", str(pipe))
    reader.join(timeout=60)
    assert result.exit_code == 4 and json.loads(received[0])["verdict"] == "inconclusive"
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    # a failed run leaves it alone: looking for a stale report in it would wait for a writer
    failed = subprocess.run(
        [sys.executable, "-m", "croctl", "evaluate", "no-such-plan.yaml", "-o", str(pipe)],
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert failed.returncode == 2 and stat.S_ISFIFO(os.stat(pipe).st_mode)


def test_output_through_a_link_replaces_the_file_and_keeps_the_link(tmp_path):
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text('{"croctl_version": "0", "verdict": "ship"}')
    link.symlink_to(real)
    assert run("evaluate", str(PLANS / "saas.yaml"), "-f", "json", "-o", str(link)).exit_code == 4
    assert link.is_symlink() and json.loads(real.read_text())["verdict"] == "inconclusive"


def test_no_segments_flag_drops_the_breakdown():
    report = json.loads(
        run("evaluate", str(PLANS / "saas.yaml"), "-f", "json", "--no-segments").stdout
    )
    assert report["segments"] == []


def test_as_of_reads_the_data_as_it_was():
    early = json.loads(
        run(
            "evaluate", str(PLANS / "saas.yaml"), "-f", "json", "--as-of", "2026-10-03T00:00:00Z"
        ).stdout
    )
    full = json.loads(run("evaluate", str(PLANS / "saas.yaml"), "-f", "json").stdout)
    assert sum(early["units"].values()) < sum(full["units"].values()) / 3


def test_bad_as_of_is_a_usage_error():
    result = run("evaluate", str(PLANS / "saas.yaml"), "--as-of", "soon")
    assert result.exit_code == 2 and "--as-of" in result.stderr


def test_missing_plan_and_unknown_format_are_usage_errors(tmp_path):
    assert run("evaluate", str(tmp_path / "nope.yaml")).exit_code == 2
    assert run("evaluate", str(PLANS / "saas.yaml"), "-f", "xml").exit_code == 2


def test_internal_errors_exit_70_never_1(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr("croctl.cli.readout.evaluate_plan", boom)
    result = run("evaluate", str(PLANS / "saas.yaml"))
    assert result.exit_code == 70
    assert "internal error" in result.stderr and "Traceback" not in result.stderr


def test_a_panic_in_polars_exits_70_never_1(monkeypatch):
    import polars as pl

    def panic(*args, **kwargs):  # what a Rust panic inside Polars raises: a BaseException
        raise pl.exceptions.PanicException("simulated panic")

    monkeypatch.setattr("croctl.cli.readout.evaluate_plan", panic)
    result = run("evaluate", str(PLANS / "saas.yaml"))
    assert result.exit_code == 70
    assert "internal error (PanicException: simulated panic)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_real_polars_panic_exits_70_from_the_console_script():
    """Polars 2.1 panics on an empty read-ahead setting, in a thread of its Parquet reader."""
    env = {**os.environ, "POLARS_ROW_GROUP_PREFETCH_SIZE": ""}
    command = [sys.executable, "-m", "croctl", "evaluate", str(PLANS / "checkout.yaml")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        pytest.skip("this Polars reads an empty POLARS_ROW_GROUP_PREFETCH_SIZE without a panic")
    assert done.returncode == 70, done.stderr
    assert done.stderr.splitlines()[-1].startswith("croctl: internal error (PanicException: ")


def test_ctrl_c_while_the_command_line_loads_is_one_line_and_130():
    """The console script imports Polars, SciPy and numba first (~0.4 s); Ctrl-C may come then."""
    script = (
        "import sys\n"
        "class Interrupt:\n"  # a finder that is pressed Ctrl-C on while croctl.cli loads
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'croctl.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from croctl.console import main\n"
        "main()\n"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    assert done.returncode == 130
    assert done.stderr == "croctl: interrupted\n"


@pytest.mark.parametrize("plan", ["checkout", "leadgen", "saas"])
def test_validate_accepts_shipped_plans(plan):
    result = run("validate", str(PLANS / f"{plan}.yaml"))
    assert result.exit_code == 0 and result.stdout.startswith("ok:")


def test_validate_reports_plan_and_data_errors():
    corpus = ROOT / "tests" / "bad_inputs"
    assert run("validate", str(corpus / "plan_undefined_column.yaml")).exit_code == 2
    assert run("validate", str(corpus / "data_missing_file.yaml")).exit_code == 3


def test_schema_command_prints_both_schemas():
    for kind in ("plan", "report"):
        result = run("schema", kind)
        assert result.exit_code == 0 and json.loads(result.stdout)["title"]
    assert run("schema", "nope").exit_code == 2


def test_plan_schema_accepts_every_shipped_plan():
    import yaml

    for plan in PLANS.glob("*.yaml"):
        document = yaml.safe_load(plan.read_text())
        document = json.loads(json.dumps(document, default=str))
        jsonschema.validate(document, load_schema("plan"))


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_a_closed_stdout_is_not_an_error(fmt):
    """`croctl evaluate ... | head`: no traceback, and the exit code is still the verdict's."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "croctl", "evaluate", str(PLANS / "leadgen.yaml"), "-f", fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader leaves before croctl writes anything
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait() == 1, stderr
    assert stderr == ""


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["evaluate", str(PLANS / "saas.yaml"), "-f", "json"], 4),
        (["evaluate", str(PLANS / "missing.yaml")], 2),
        (["--version"], 0),
    ],
)
def test_the_console_script_leaves_with_the_command_s_code_and_whole_output(args, code):
    """`main` skips Python's teardown (`os._exit`): the exit code and output must survive it."""
    command = [sys.executable, "-m", "croctl", *args]
    proc = subprocess.run(command, check=False, capture_output=True, text=True)
    assert proc.returncode == code, proc.stderr
    if args[0] == "evaluate" and code != 2:
        assert json.loads(proc.stdout)["exit_code"] == code  # complete: it parses
    if code == 2:
        assert proc.stderr.startswith("croctl: plan error:") and proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["evaluate"], "Missing argument 'plan_path'. (hint: python -m croctl evaluate --help)"),
        (["evaluate", str(PLANS / "saas.yaml"), "--engine", "spork"], "'spork' is not one of"),
        (["evaluate", str(PLANS / "saas.yaml"), "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'. (hint: python -m croctl --help)"),
        (["power", "--baseline-rate", "0.04", "--mde", "0.05", "-f", "html"], "'table', 'json'"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args, expected):
    """Typer printed its usage and a boxed error over five lines."""
    proc = subprocess.run(
        [sys.executable, "-m", "croctl", *args], check=False, capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("croctl: usage error: ") and proc.stderr.count("\n") == 1
    assert expected in proc.stderr


def test_help_keeps_bracketed_defaults_and_each_example_on_its_own_line():
    """Rich markup took `[plan or 0.05]` for a style and dropped it; examples ran together."""
    power = runner.invoke(app, ["power", "--help"], env={"COLUMNS": "200"}).stdout
    assert "[plan or 0.05]" in power and "[equal split]" in power
    examples = [line.strip() for line in power.splitlines() if line.strip().startswith("croctl")]
    assert examples == [
        "croctl power --baseline-rate 0.04 --mde 0.05 --daily-units 12000",
        "croctl power --baseline-mean 52.0 --sd 140 --units 40000",
        "croctl power plans/checkout.yaml --mde 0.05",
    ]
    schema = runner.invoke(app, ["schema", "--help"], env={"COLUMNS": "100"}).stdout
    assert any(line.strip() == "croctl schema report > report.schema.json" for line in
               schema.splitlines())  # fmt: skip
    evaluate = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "80"}).stdout
    assert "failed), 2 plan or usage error" in evaluate  # a paragraph reflowed, not ragged


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", str(PLANS / "checkout.yaml"), "--format", "json"],
        ["evaluate", str(PLANS / "checkout.yaml")],
        ["sql", str(PLANS / "checkout.yaml")],
        ["schema", "report"],
        ["validate", str(PLANS / "checkout.yaml")],
        ["power", "--baseline-rate", "0.1", "--mde", "0.05", "--format", "json"],
    ],
)
def test_stdout_on_a_full_disk_is_a_data_error_not_a_silent_success(args):
    """`> report.json` on a full disk: exit 0 with no report (sql, schema) or 70 (evaluate)."""
    command = [sys.executable, "-m", "croctl", *args]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(command, check=False, stdout=full, stderr=subprocess.PIPE)
    stderr = proc.stderr.decode()
    assert proc.returncode == 3, stderr
    assert stderr.startswith("croctl: data error: stdout: cannot write") and stderr.count("\n") == 1


@pytest.mark.parametrize("args", [["schema", "report"], ["evaluate", str(PLANS / "saas.yaml")]])
def test_a_closed_stdout_is_a_data_error_not_a_traceback_and_exit_1(args):
    """`>&-`: Python's `sys.stdout` is None; the last flush raised, and Python exited 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "croctl", *args],
        check=False,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),  # the child starts without a stdout
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 3, stderr
    assert (
        stderr
        == "croctl: data error: stdout: cannot write (it is closed) (hint: redirect it to a file)\n"
    )


def test_croctl_alone_prints_its_help():
    proc = subprocess.run([sys.executable, "-m", "croctl"], check=False, capture_output=True)
    assert proc.returncode == 2 and b"Commands" in proc.stdout and proc.stderr == b""


@pytest.mark.parametrize(("raised", "code"), [(None, 0), (3, 3), ("gone", 1)])
def test_main_turns_any_system_exit_into_an_exit_code(monkeypatch, capsys, raised, code):
    cli = importlib.import_module("croctl.cli.app")  # the module, not the Typer `app` it holds

    def command(**_: object) -> None:
        raise SystemExit(raised)

    left: list[int] = []
    monkeypatch.setattr(cli, "app", command)
    monkeypatch.setattr(cli.os, "_exit", left.append)
    cli.main()
    assert left == [code]
    assert ("gone" in capsys.readouterr().err) is (raised == "gone")


@pytest.mark.parametrize(
    ("name", "ours", "preset"),
    [
        ("OPENBLAS_NUM_THREADS", "1", None),
        ("OPENBLAS_NUM_THREADS", "1", "4"),
        ("_RJEM_MALLOC_CONF", "dirty_decay_ms:2000,muzzy_decay_ms:2000", None),
        ("_RJEM_MALLOC_CONF", "dirty_decay_ms:2000,muzzy_decay_ms:2000", "dirty_decay_ms:100"),
    ],
)
def test_the_command_sets_its_process_up_unless_told(name, ours, preset):
    """OpenBLAS threads would spin beside the engine's, and Polars' allocator would hand memory
    back only to fault it in again; a user's own setting wins (Polars appends the allocator's to
    its own, so the last one counts)."""
    env = {k: v for k, v in os.environ.items() if k != name}
    if preset is not None:
        env[name] = preset
    code = f"import os, croctl.cli, numpy, polars; print(os.environ[{name!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().endswith(preset or ours)
