"""Assignment strategies: round-robin and least-loaded, skipping who cannot take more."""

from __future__ import annotations

from collections import Counter
from typing import Any

from routing.assignment import assign, assign_least_loaded, assign_round_robin
from routing.config import TeamConfig


def _team(*members: dict[str, Any], email: str | None = "team@support.test") -> TeamConfig:
    return TeamConfig.model_validate(
        {"name": "team", "calendar": "office", "email": email, "members": list(members)}
    )


def _member(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name.title(), "email": f"{name}@support.test", **extra}


def test_round_robin_takes_turns() -> None:
    team = _team(_member("anna"), _member("bence"), _member("chloe"))
    state: dict[str, int] = {}
    picked = []
    for _ in range(6):
        result = assign_round_robin(team, {}, state)
        picked.append(result.assignee)
        state = dict(result.rr_state)
    assert picked == [f"{n}@support.test" for n in ["anna", "bence", "chloe"] * 2]


def test_round_robin_is_fair_over_many_tickets() -> None:
    team = _team(*(_member(name) for name in ("a", "b", "c", "d")))
    state: dict[str, int] = {}
    counts: Counter[str | None] = Counter()
    for _ in range(100):
        result = assign_round_robin(team, {}, state)
        counts[result.assignee] += 1
        state = dict(result.rr_state)
    assert set(counts.values()) == {25}


def test_round_robin_skips_away_and_full_agents() -> None:
    team = _team(_member("anna", away=True), _member("bence", max_open=2), _member("chloe"))
    result = assign_round_robin(team, {"BENCE@support.test": 2}, {})
    assert result.assignee == "chloe@support.test"
    assert result.skipped == ("anna@support.test: away", "bence@support.test: at max_open (2/2)")
    assert result.rr_state == {"team": 0}  # the next turn starts after chloe (index 2)
    assert result.notify == ("chloe@support.test",)


def test_round_robin_state_is_per_team_and_not_mutated() -> None:
    team = _team(_member("anna"), _member("bence"))
    state = {"other-team": 7, "team": 1}
    result = assign_round_robin(team, {}, state)
    assert result.assignee == "bence@support.test"
    assert result.rr_state == {"other-team": 7, "team": 0}
    assert state == {"other-team": 7, "team": 1}


def test_round_robin_survives_a_shrunk_team() -> None:
    team = _team(_member("anna"), _member("bence"))
    assert assign_round_robin(team, {}, {"team": 5}).assignee == "bence@support.test"


def test_nobody_available_notifies_the_team_address() -> None:
    team = _team(_member("anna", away=True), _member("bence", away=True))
    for result in (assign_round_robin(team, {}, {"team": 1}), assign_least_loaded(team, {})):
        assert result.assignee is None
        assert result.notify == ("team@support.test",)
        assert result.reason == "nobody in team is available"
    assert assign_round_robin(team, {}, {"team": 1}).rr_state == {"team": 1}


def test_nobody_available_without_a_team_address_notifies_the_members() -> None:
    team = _team(_member("anna", max_open=1), _member("bence", away=True), email=None)
    result = assign_round_robin(team, {"anna@support.test": 1}, {})
    assert result.assignee is None
    assert result.notify == ("anna@support.test",)


def test_least_loaded_picks_the_fewest_open_tickets() -> None:
    team = _team(_member("anna"), _member("bence"), _member("chloe"))
    load = {"anna@support.test": 4, "bence@support.test": 2, "chloe@support.test": 3}
    result = assign_least_loaded(team, load)
    assert result.assignee == "bence@support.test"
    assert result.reason == "least loaded in team: Bence has 2 open"


def test_least_loaded_ties_go_to_member_order_and_skip_unavailable() -> None:
    team = _team(_member("anna", away=True), _member("bence"), _member("chloe"))
    assert assign_least_loaded(team, {}).assignee == "bence@support.test"
    team = _team(_member("anna", max_open=3), _member("bence"))
    load = {"anna@support.test": 3, "bence@support.test": 10}
    assert assign_least_loaded(team, load).assignee == "bence@support.test"


def test_least_loaded_evens_out() -> None:
    team = _team(_member("anna"), _member("bence"), _member("chloe"))
    load = {"anna@support.test": 5}
    for _ in range(8):
        chosen = assign_least_loaded(team, load).assignee
        assert chosen is not None
        load[chosen] = load.get(chosen, 0) + 1
    assert sorted(load.values()) == [4, 4, 5]


def test_strategy_none_assigns_nobody() -> None:
    team = _team(_member("anna"))
    result = assign(team, "none", {}, {"team": 0})
    assert (result.assignee, result.notify) == (None, ("team@support.test",))
    assert assign(team, "round_robin", {}, {}).assignee == "anna@support.test"
    assert assign(team, "least_loaded", {}, {}).assignee == "anna@support.test"
