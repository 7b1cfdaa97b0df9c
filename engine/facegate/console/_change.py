"""Change and sign off: edit a rule with live diagnostics; approve a rule or the pack."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._approvals import approval_record
from ..errors import StoreError
from ._editing import Conflict, check, fingerprint, restore, rule_path, rule_span, save
from ._read import pack_or_404
from ._state import LoadedPack
from ._web import Ctx


def _rule(ctx: Ctx) -> tuple[LoadedPack, Any] | Response:
    loaded = pack_or_404(ctx)
    if not isinstance(loaded, LoadedPack):
        return loaded
    assert loaded.policy is not None
    rid = ctx.request.path_params["rule"]
    rule = next((r for r in loaded.policy.rules if r.id == rid), None)
    if rule is None:
        return ctx.page("error.html", status=404, title="No such rule", detail=f"pack `{loaded.id}` has no rule `{rid}`")
    return loaded, rule


def edit_page(ctx: Ctx, *, text: str | None = None, result: Any = None, message: str = "", status: int = 200,
              base: str | None = None) -> Response:
    found = _rule(ctx)
    if not isinstance(found, tuple):
        return found
    loaded, rule = found
    assert loaded.policy is not None
    span = rule_span(rule_path(loaded.policy, rule.id), rule.id)
    return ctx.page("edit.html", status=status, loaded=loaded, rule=rule, text=span.text if text is None else text,
                    first_line=span.start + 1, file=span.path.relative_to(ctx.state.root_of(loaded.policy)).as_posix(),
                    base_fp=base or fingerprint(ctx.state.root_of(loaded.policy)), result=result, message=message)


def _checked(ctx: Ctx) -> tuple[LoadedPack, Any, Any, str]:
    found = _rule(ctx)
    assert isinstance(found, tuple)
    loaded, rule = found
    assert loaded.policy is not None
    text = str(ctx.form.get("yaml") or "").replace("\r\n", "\n")
    span = rule_span(rule_path(loaded.policy, rule.id), rule.id)
    return loaded, span, check(loaded.policy, span, text, report=loaded.report, audit=ctx.state.store.audit), text


def check_fragment(ctx: Ctx) -> Response:
    """The diagnostics as an HTML fragment (the editor's script asks for it as one types)."""
    if not isinstance(_rule(ctx), tuple):
        return _rule(ctx)  # type: ignore[return-value]
    _, _, result, _ = _checked(ctx)
    page = ctx.page("_check.html", result=result)
    page.headers["X-Facegate-Problems"] = str(len(result.problems))
    page.headers["X-Facegate-Failing"] = str(result.failing)
    return page


def save_rule(ctx: Ctx) -> Response:
    found = _rule(ctx)
    if not isinstance(found, tuple):
        return found
    loaded, span, result, text = _checked(ctx)
    base = str(ctx.form.get("base") or "")
    policy = loaded.policy
    assert policy is not None
    if ctx.form.get("action") != "save":
        return edit_page(ctx, text=text, result=result, base=base)
    if result.problems:
        return edit_page(ctx, text=text, result=result, status=422, base=base,
                         message="Not saved: the pack would not load with this text (see the problems below).")
    if result.failing and ctx.form.get("accept_failing") != "on":
        return edit_page(ctx, text=text, result=result, status=409, base=base,
                         message=f"Not saved: {result.failing} case(s) would fail. Tick “save although cases fail” to save anyway.")
    try:
        old_text, diff, after = save(policy, span, text, base)
    except Conflict as exc:
        return edit_page(ctx, text=text, result=result, status=409, base=base, message=f"Not saved: {exc}.")
    new_revision = result.policy.revision if result.policy is not None else None
    try:
        ctx.state.record("rule_saved", ctx.user.name if ctx.user else None, pack=policy.id, rule=found[1].id,
                     file=span.path.relative_to(ctx.state.root_of(policy)).as_posix(), revision_before=policy.revision,
                     revision_after=new_revision, files_before=base, files_after=after, diff=diff,
                         failing_cases=result.failing, note=str(ctx.form.get("note") or ""))
    except StoreError as exc:  # a change that cannot be recorded is not made
        restore(span, old_text)
        return edit_page(ctx, text=text, result=result, status=503, base=base, message=f"Not saved: the change could not be recorded ({exc}).")
    return ctx.redirect(f"/packs/{policy.id}/provisions/{found[1].provision}?saved={found[1].id}")


def approve(ctx: Ctx) -> Response:
    loaded = pack_or_404(ctx)
    if not isinstance(loaded, LoadedPack):
        return loaded
    policy = loaded.policy
    assert policy is not None and ctx.user is not None
    if str(ctx.form.get("revision") or "") != policy.revision:
        return ctx.page("error.html", status=409, title="Not approved",
                        detail="the pack changed since you read it; read it again and approve what is there now")
    rule = str(ctx.form.get("rule") or "") or None
    if rule is not None and rule not in {r.id for r in policy.rules}:
        return ctx.page("error.html", status=404, title="Not approved", detail=f"no rule `{rule}` in `{policy.id}`")
    record = approval_record(policy, by=ctx.user.name, role=ctx.user.role, rule=rule, note=str(ctx.form.get("note") or "")[:2000])
    ctx.state.store.audit.append(record)
    back = str(ctx.form.get("back") or "")
    return ctx.redirect(back if back.startswith("/packs/") else f"/packs/{policy.id}")
