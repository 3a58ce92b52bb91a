"""`yuqing model …` says how to install the train extra when it is missing."""

from __future__ import annotations

from pipeline.cli.model import missing_train_packages


def test_only_missing_packages_of_the_train_extra_are_named() -> None:
    requirements = [
        'click>=8; extra == "train"',  # installed
        "yuqing-no-such-package>=1; extra == 'train'",
        'yuqing-no-such-dev-tool; extra == "dev"',  # another extra
        "yuqing-no-such-base-package>=1",  # a base requirement is pip's business, not this check's
    ]
    assert missing_train_packages(requirements) == ["yuqing-no-such-package"]


def test_this_environment_has_the_train_extra() -> None:
    assert missing_train_packages() == []
