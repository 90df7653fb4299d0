"""GitOps file edits: minimal line edits that keep comments, a verified re-dump otherwise."""

from __future__ import annotations

import json

import pytest
import yaml

from tools.gitops import SAMPLE_DIR, GitOpsRefused, files

LIMITS = (SAMPLE_DIR / "config/limits.yaml").read_text()
MODELS = (SAMPLE_DIR / "config/models.yaml").read_text()
FLAGS = (SAMPLE_DIR / "flags/flags.json").read_text()


def test_sample_edits_change_one_line() -> None:
    assert files.set_limits(LIMITS, {"global_rpm": 100}) == LIMITS.replace("1000", "100")
    assert files.set_alias(MODELS, "chat-default", "azure/gpt-4-turbo") == MODELS.replace(
        "chat-default: openai/gpt-4-turbo", "chat-default: azure/gpt-4-turbo")
    flipped = files.set_default_variant(FLAGS, "refund-tool", "off")
    assert flipped == FLAGS.replace('"defaultVariant": "on"', '"defaultVariant": "off"', 1)


def test_comments_and_layout_survive() -> None:
    text = ("# rate limits, owned by the platform team\nglobal_rpm: 1000  # hard cap\n"
            "per_user_rpm: 60\nblocked_users:\n  - u-1  # abuse, OPS-12\n  # - u-2\n"
            "extra: keep\n")
    out = files.set_limits(text, {"global_rpm": 5, "per_user_rpm": 7})
    assert out == text.replace("1000  #", "5  #").replace("60", "7")
    out = files.add_blocked_user(text, "u-3")
    assert out == text.replace("OPS-12\n", "OPS-12\n  - u-3\n")  # after the last item
    assert files.add_blocked_user(out, "u-3") == out  # idempotent


def test_values_needing_quotes_and_fallback_redump() -> None:
    out = files.add_blocked_user(LIMITS, "yes")  # YAML would read a bare yes as a boolean
    assert yaml.safe_load(out)["blocked_users"] == ["yes"]
    flow = "global_rpm: 1\nblocked_users: [a, b]\n"  # non-empty flow list: re-dumped, verified
    assert yaml.safe_load(files.add_blocked_user(flow, "c")) == {
        "global_rpm": 1, "blocked_users": ["a", "b", "c"]}
    missing = files.set_limits("blocked_users: []\n", {"per_user_rpm": 3})
    assert yaml.safe_load(missing) == {"blocked_users": [], "per_user_rpm": 3}


def test_json_keeps_indent_and_non_ascii() -> None:
    text = json.dumps({"flags": {"f": {"state": "ENABLED", "variants": {"on": True, "off": False},
                                       "defaultVariant": "on", "metadata": {"owner": "José"}}}},
                      indent=4, ensure_ascii=False)
    out = files.set_default_variant(text, "f", "off")
    assert out == text.replace('"defaultVariant": "on"', '"defaultVariant": "off"')


def test_refusals() -> None:
    with pytest.raises(GitOpsRefused, match="unknown flag"):
        files.set_default_variant(FLAGS, "nope", "on")
    with pytest.raises(GitOpsRefused, match="not valid JSON"):
        files.parse_flags("{")
    with pytest.raises(GitOpsRefused, match="must be an integer"):
        files.parse_limits("global_rpm: lots\n")
    with pytest.raises(GitOpsRefused, match="not valid YAML"):
        files.parse_aliases("aliases: [\n")
    with pytest.raises(GitOpsRefused, match="does not exist"):
        files.decode("config/limits.yaml", None)
