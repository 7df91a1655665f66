"""A flag never eats a test path: ``pytest --leak-memray test_s.py`` runs test_s.py.

Our optional-value flags (``--leak-memray``, ``--leak-reports``, ``--leak-save``,
``--leak-compare``) take a value after "=" only; bare, they mean yes / auto. Before, argparse
gave them the next argument, so the test path became the flag's value (issue 11).
"""

from __future__ import annotations

import pytest

from harness.plugin import attach_bare_values

SHOW = """
from harness.plugin import SESSION_KEY

def test_{name}(request):
    settings = request.config.stash[SESSION_KEY].settings
    print("SETTINGS", settings.memray, settings.reports, settings.save, settings.compare, settings.sources["memray"])
"""


@pytest.fixture
def run(pytester):
    pytester.makepyfile(test_s=SHOW.format(name="s"), test_t=SHOW.format(name="t"))

    def _run(*args: str):
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "-v", "-p", "no:randomly", *args)

    return _run


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--leak-memray", "test_s.py"], "SETTINGS True True None None command-line option --leak-memray"),
        (["--leak-reports", "test_s.py"], "SETTINGS False True None None default"),
        (["--leak-memray=no", "test_s.py"], "SETTINGS False True None None command-line option --leak-memray"),
        (["--leak-reports=no", "--leak-memray", "test_s.py"], "SETTINGS True False None None command-line*"),
        (["--leak-compare", "test_s.py"], "SETTINGS False True None auto default"),
        (["--leak-save=night-1", "test_s.py"], "SETTINGS False True night-1 None default"),
    ],
    ids=["memray", "reports", "memray=no", "reports=no-then-memray", "compare", "save=NAME"],
)
def test_a_bare_flag_before_a_test_path_leaves_the_path_to_pytest(run, args, shown):
    result = run(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"test_s.py::test_s {shown}*"])
    assert "test_t" not in result.stdout.str()


def test_a_bare_flag_is_yes_over_the_environment(run, monkeypatch):
    monkeypatch.setenv("HARNESS_MEMRAY", "no")
    result = run("--leak-memray", "test_t.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_t SETTINGS True * command-line option --leak-memray"])


def test_a_bare_flag_in_addopts_leaves_the_command_lines_path_alone(run, pytester):
    pytester.makeini("[pytest]\naddopts = --leak-memray\n")
    result = run("test_t.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_t SETTINGS True * command-line option --leak-memray"])


def test_the_conftest_beside_a_path_after_a_bare_flag_is_loaded_early(run, pytester):
    # An option of sub/conftest.py is known only if pytest loaded that conftest before
    # parsing, which it does for the paths it was given: the flag must not have eaten it.
    sub = pytester.mkpydir("sub")
    (sub / "conftest.py").write_text(
        "def pytest_addoption(parser):\n    parser.addoption('--sub-option', action='store_true')\n"
    )
    (sub / "test_sub.py").write_text(SHOW.format(name="sub"))
    result = run("--leak-memray", "sub/test_sub.py", "--sub-option")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["sub/test_sub.py::test_sub SETTINGS True *"])


def test_a_value_after_a_space_is_a_path_and_pytest_says_so(run):
    result = run("--leak-memray", "yes", "test_s.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*file or directory not found: yes*"])


def test_a_bad_value_after_equals_names_the_flag(run):
    result = run("--leak-memray=maybe", "test_s.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot read 'maybe' from command-line option --leak-memray as yes/no*"])


def test_bare_values_are_attached_only_before_a_double_dash():
    args = ["--leak-memray", "--leak-save", "-k", "x", "--leak-where=no", "--leak-compare=3", "--", "--leak-memray"]
    assert attach_bare_values(args)
    assert args == [
        "--leak-memray=yes",
        "--leak-save=auto",
        "-k",
        "x",
        "--leak-where=no",
        "--leak-compare=3",
        "--",
        "--leak-memray",
    ]
    assert not attach_bare_values(["test_s.py", "--leak-reports=no"])
