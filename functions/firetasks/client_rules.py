"""What client SDKs may enqueue: the security-rules function generated from the registry.

Servers (the Admin SDK) create any task; a client creates only the tasks of handlers registered
with `client=...`. `firetasks rules --handlers MODULE` prints the function, and `--write FILE`
replaces it between the BEGIN and END lines of a rules file, where the rules' `create` condition
calls it. A test compares the committed rules with the registry, so the two cannot drift apart.
"""

from __future__ import annotations

import re

from firetasks.registry import HandlerRegistry

BEGIN = "// BEGIN firetasks client tasks"
END = "// END firetasks client tasks"
FUNCTION = "clientMayCreate"
EVENT_FUNCTION = "clientMaySend"  # which events clients may send (firetasks.events)


def rules_function(registry: HandlerRegistry, indent: str = "    ") -> str:
    """`function clientMayCreate(taskId, task)`, true for exactly the tasks clients may create,
    and `function clientMaySend(eventId, event)`, for the events they may send, between the
    BEGIN and END lines."""
    terms = []
    for type_, action, access in registry.client_creatable():
        term = [f"task.type == '{type_}'", f"task.action == '{action}'"]
        if access.once_per_parent:
            term.append(f"taskId == '{action}'")
        if access.data != "true":
            term.append(f"({access.data})")
        terms.append("(" + f"\n{indent}       && ".join(term) + ")")
    body = f"\n{indent}    || ".join(terms) or "false"
    events = []
    for event in registry.client_events():
        term = [f"event.name == '{event.name}'"]
        if event.once:
            term.append(f"eventId == '{event.name}'")
        if event.data != "true":
            term.append(f"({event.data})")
        events.append("(" + f"\n{indent}       && ".join(term) + ")")
    return "\n".join([
        f"{indent}{BEGIN} (`firetasks rules` writes this part; do not edit)",
        f"{indent}function {FUNCTION}(taskId, task) {{",
        f"{indent}  let data = task.data;",
        f"{indent}  return {body};",
        f"{indent}}}",
        f"{indent}function {EVENT_FUNCTION}(eventId, event) {{",
        f"{indent}  let data = event.data;",
        f"{indent}  return {f'{chr(10)}{indent}    || '.join(events) or 'false'};",
        f"{indent}}}",
        f"{indent}{END}",
    ])


def generated_part(rules: str) -> str | None:
    """The generated function as it stands in a rules file's text, or None if it has none."""
    match = _PART.search(rules)
    return match.group(0) if match else None


def with_function(rules: str, registry: HandlerRegistry) -> str:
    """The rules text with its generated part replaced by the registry's."""
    match = _PART.search(rules)
    if match is None:
        raise ValueError(f"the rules have no '{BEGIN}' ... '{END}' part to replace")
    indent = match.group("indent")
    return rules[:match.start()] + rules_function(registry, indent) + rules[match.end():]


_PART = re.compile(rf"(?P<indent>[ \t]*){re.escape(BEGIN)}.*?{re.escape(END)}", re.DOTALL)
