"""The test suite's own rules: a child process that hangs fails its test instead of hanging the run."""

from __future__ import annotations

import ast
from pathlib import Path

RUNS = {"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output"}


def without_timeout(call: ast.Call) -> bool:
    """A call that waits on a child process (or an event) and has no timeout, by keyword or by position."""
    if not isinstance(call.func, ast.Attribute) or any(keyword.arg == "timeout" for keyword in call.keywords):
        return False
    if ast.unparse(call.func) in RUNS:
        return True
    if call.func.attr == "wait":  # Popen.wait(timeout), Event.wait(timeout)
        return not call.args
    return call.func.attr == "communicate" and len(call.args) < 2  # communicate(input, timeout)


def test_every_wait_on_a_child_process_has_a_timeout():
    missing = [
        f"{path.name}:{node.lineno} {ast.unparse(node.func)}"
        for path in sorted(Path(__file__).parent.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and without_timeout(node)
    ]
    assert not missing, "give these a timeout: " + ", ".join(missing)
