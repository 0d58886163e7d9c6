"""Route `claims:` conditions compare a token's (or an API key's) claim with the allowed
values as JSON values, their types respected: `true` is not `1`, `false` is not `0`, a
string is not a number; numbers compare by value (1 and 1.0 are one JSON number)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_auth_policy import bearer, policy, rejected, run, token


@pytest.mark.parametrize(("allowed", "claim"), [
    ((1,), True), ((True,), 1), ((True,), 1.0), ((0,), False), ((False,), 0),
    ((False,), 0.0), ((True,), "true"), ((1,), "1"), (("1",), 1), ((1,), [True]),
    (([1, 2],), [[True, 2]]), (({"a": 1},), {"a": True}), ((None,), False)])
async def test_a_claim_of_another_json_type_is_refused(allowed: tuple[Any, ...],
                                                      claim: Any) -> None:
    p = policy(claims={"c": allowed})
    r = await rejected(p, bearer(token(claims={"c": claim})), status=403)
    assert "claim 'c' does not allow this route" in r.message


@pytest.mark.parametrize(("allowed", "claim"), [
    ((1,), 1), ((1,), 1.0), ((1.0,), 1), ((True,), True), ((False,), False), ((0,), 0),
    (("ml", "infra"), "infra"), ((1,), [False, 1]), (({"a": [1, "x"]},), {"a": [1.0, "x"]}),
    (([1, 2],), [[1, 2]])])
async def test_a_claim_of_the_same_json_value_is_accepted(allowed: tuple[Any, ...],
                                                         claim: Any) -> None:
    await run(policy(claims={"c": allowed}), bearer(token(claims={"c": claim})))


def test_json_equality() -> None:
    from extproc.auth.policy import json_equal

    assert json_equal(True, True) and not json_equal(True, 1) and not json_equal(0, False)
    assert json_equal(2, 2.0) and not json_equal(2, "2") and not json_equal("a", ["a"])
    assert json_equal([1, {"b": False}], (1.0, {"b": False}))
    assert not json_equal({"b": 0}, {"b": False}) and not json_equal({"b": 0}, {"c": 0})
    assert not json_equal([1], [1, 1]) and json_equal(None, None)
