"""Choosing an agent within a team: round-robin or least-loaded.

Both strategies skip agents who are away or already hold ``max_open`` open
tickets. State is passed in and returned, never kept: round-robin takes the
next index per team and returns the new one; least-loaded takes the open-ticket
count per agent address. When nobody is available the assignee is None and the
team is notified instead (:attr:`Assignment.notify`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from routing.config import MemberConfig, Strategy, TeamConfig

__all__ = ["Assignment", "assign", "assign_least_loaded", "assign_round_robin", "unavailable"]


@dataclass(frozen=True)
class Assignment:
    """Who gets the ticket, and the round-robin state to store afterwards."""

    team: str
    assignee: str | None
    """The agent's address, or None when nobody is available (or strategy "none")."""
    rr_state: Mapping[str, int]
    """The round-robin state to keep for the next call (unchanged unless round-robin)."""
    reason: str
    skipped: tuple[str, ...] = field(default=())
    """One entry per skipped agent: ``"anna@example.com: away"``."""
    notify: tuple[str, ...] = field(default=())
    """Who hears about the ticket: the assignee, else the team address, else the members."""


def unavailable(member: MemberConfig, load: Mapping[str, int]) -> str | None:
    """Why ``member`` cannot take a ticket now, or None when they can."""
    if member.away:
        return "away"
    open_tickets = load.get(member.email, 0)
    if member.max_open is not None and open_tickets >= member.max_open:
        return f"at max_open ({open_tickets}/{member.max_open})"
    return None


def _lower_keys(load: Mapping[str, int]) -> dict[str, int]:
    return {address.lower(): count for address, count in load.items()}


def _notify(team: TeamConfig, assignee: str | None) -> tuple[str, ...]:
    if assignee is not None:
        return (assignee,)
    if team.email is not None:
        return (team.email,)
    # No team address: tell the members who are around, or everyone as a last resort.
    present = tuple(m.email for m in team.members if not m.away)
    return present or tuple(m.email for m in team.members)


def assign_round_robin(
    team: TeamConfig, load: Mapping[str, int], rr_state: Mapping[str, int]
) -> Assignment:
    """The next available member after the one assigned last, in member order.

    ``rr_state[team.name]`` is the index to try first; the returned state
    points just past the chosen member, so with everyone available each
    member gets one ticket in turn.
    """
    counts = _lower_keys(load)
    members = team.members
    state = dict(rr_state)
    skipped: list[str] = []
    if members:
        first = state.get(team.name, 0) % len(members)
        for offset in range(len(members)):
            index = (first + offset) % len(members)
            member = members[index]
            why = unavailable(member, counts)
            if why is None:
                state[team.name] = (index + 1) % len(members)
                return Assignment(
                    team.name,
                    member.email,
                    state,
                    f"round robin in {team.name}: {member.name} is next",
                    tuple(skipped),
                    (member.email,),
                )
            skipped.append(f"{member.email}: {why}")
    return _nobody(team, state, skipped)


def _nobody(team: TeamConfig, state: dict[str, int], skipped: list[str]) -> Assignment:
    """No member can take the ticket: the team address is told instead."""
    return Assignment(
        team.name,
        None,
        state,
        f"nobody in {team.name} is available",
        tuple(skipped),
        _notify(team, None),
    )


def assign_least_loaded(
    team: TeamConfig, load: Mapping[str, int], rr_state: Mapping[str, int] | None = None
) -> Assignment:
    """The available member with the fewest open tickets (ties: member order)."""
    counts = _lower_keys(load)
    skipped: list[str] = []
    best: MemberConfig | None = None
    for member in team.members:
        why = unavailable(member, counts)
        if why is not None:
            skipped.append(f"{member.email}: {why}")
        elif best is None or counts.get(member.email, 0) < counts.get(best.email, 0):
            best = member
    state = dict(rr_state or {})
    if best is None:
        return _nobody(team, state, skipped)
    return Assignment(
        team.name,
        best.email,
        state,
        f"least loaded in {team.name}: {best.name} has {counts.get(best.email, 0)} open",
        tuple(skipped),
        (best.email,),
    )


def assign(
    team: TeamConfig,
    strategy: Strategy,
    load: Mapping[str, int],
    rr_state: Mapping[str, int],
) -> Assignment:
    """Assign within ``team`` by ``strategy`` ("none": notify the team, assign nobody)."""
    if strategy == "round_robin":
        return assign_round_robin(team, load, rr_state)
    if strategy == "least_loaded":
        return assign_least_loaded(team, load, rr_state)
    return Assignment(
        team.name,
        None,
        dict(rr_state),
        f"no assignment: the {team.name} team picks it up",
        (),
        _notify(team, None),
    )
