"""What the app's tabs share: project errors shown in the page, and the PNG picture component."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

from stm_zoo.errors import StmZooError

log = logging.getLogger("stm_zoo.app")


@contextmanager
def user_errors() -> Iterator[None]:
    """Show project errors as a message in the page; log anything else with its traceback."""
    try:
        yield
    except gr.Error:
        raise
    except StmZooError as error:
        raise gr.Error(str(error), print_exception=False) from None
    except Exception as error:
        log.exception("unexpected error")
        raise gr.Error(
            f"Unexpected error ({type(error).__name__}: {error}); please report it with the file."
        ) from None


def positive_or_none(value: float | None) -> float | None:
    """A number field's value, None when empty or 0 ("from the file")."""
    return float(value) if value else None


def picture(
    label: str,
    elem_id: str | None = None,
    buttons: list[str] | None = None,
    visible: bool = True,
) -> gr.Image:
    """A server-rendered PNG view: not editable, with a fullscreen button (and others)."""
    return gr.Image(
        label=label,
        type="numpy",
        format="png",
        interactive=False,
        buttons=buttons or ["fullscreen"],
        elem_id=elem_id,
        visible=visible,
    )
