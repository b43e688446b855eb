"""The application: the `rkdsc` command and `rkdsc doctor`, above `rkdsc_core`, `rkdsc_gr` and
`rkdsc_train` (DESIGN.md §2). Nothing below this package imports it."""
