"""Workarounds of what Gradio does not offer publicly, kept here with the reason for each.
tests/test_compat.py fails once a private API used here changes, so that it is adapted then."""
from __future__ import annotations

import gradio as gr

# Gradio keeps a closed tab's gr.State values for an hour, and its record of every session (a copy of the
# page's config holding the last value of every output) until its capacity is reached; it has no public
# call to drop one. Its state holder (gradio.state_holder.StateHolder, set on the Blocks when the app is
# served) does: these three functions are all that the app touches of it.


def forget_session(blocks: gr.Blocks, session_hash: str) -> None:
    """Drop the session's gr.State values and Gradio's record of it now."""
    holder = blocks.state_holder
    holder.delete_state(session_hash)
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)


def session_hashes(blocks: gr.Blocks) -> list[str]:
    """The sessions Gradio holds a record of."""
    with blocks.state_holder.lock:
        return list(blocks.state_holder.session_data)
