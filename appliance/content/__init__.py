"""Content safety: sensitive terms and prompt injection, in requests and in answers.

``policy`` loads ``policies/content.yaml``; ``normalize`` folds texts so that evaded
terms read as written; ``matcher`` finds every term at once; ``scan`` decides what each
finding does to a text, whole or streamed; ``evaluation`` measures refusal rates.
"""
