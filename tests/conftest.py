"""The suite's fixtures live in plugins, one module per concern; helpers live in ``tests.support``.

No test module imports another: what two tests share is a plugin fixture or a support helper.
"""

pytest_plugins = [
    "tests.plugins.services",
    "tests.plugins.clickhouse",
    "tests.plugins.api",
    "tests.plugins.models",
    "tests.plugins.workers",
    "tests.plugins.soak",
]
