"""Reports: per-test pages and verdict.json, the run index with its history, saved runs,
comparisons and the trend page. Nothing here is imported until a report is written."""
