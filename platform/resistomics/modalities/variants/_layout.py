"""Where variant calls sit in their layout (``partitioned-table@1``)."""

LAYOUT = "partitioned-table@1"
CALLS = "calls"  # the table: <version>/calls/subject_id=<subject>/*.parquet
PARTITION = "subject_id"
