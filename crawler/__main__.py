"""``python -m crawler``: run one crawl run of one topic (started by the scheduler).

Exit status 0 means the run was recorded (whatever its status); anything else means the
process failed before it could finish the run's row, and the parent records it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from crawler.lifeline import die_with_supervisor
from crawler.observability import configure_logging, flush_sentry, init_sentry

logger = logging.getLogger("topicwatch.crawl")


def main(argv: list[str] | None = None) -> int:
    die_with_supervisor()
    parser = argparse.ArgumentParser(
        prog="python -m crawler",
        description="Run one crawl run of one topic and record it in the database.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TOPICWATCH_DATABASE_URL"),
        help="SQLAlchemy URL of the database (default: $TOPICWATCH_DATABASE_URL)",
    )
    parser.add_argument("--topic", required=True, help="name of the topic to crawl")
    parser.add_argument("--run-id", required=True, type=int, help="crawl_runs row to finish")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("the database URL is needed: --database-url or TOPICWATCH_DATABASE_URL")

    configure_logging(args.log_format, args.log_level)
    init_sentry("crawler", tags={"topic": args.topic, "run": str(args.run_id)})
    from crawler.run import crawl_topic
    from storage.db import DATABASE_ERRORS, describe_error

    try:
        crawl_topic(args.database_url, args.topic, args.run_id)
    except DATABASE_ERRORS as exc:
        # The database is down or full: one line, the traceback only for those who ask.
        logger.error(
            "crawl run %s of topic %s stopped: the database failed: %s",
            args.run_id,
            args.topic,
            describe_error(exc),
        )
        logger.debug("The database error", exc_info=True)
        flush_sentry()
        return 1
    except Exception:
        logger.exception("crawl run %s of topic %s crashed", args.run_id, args.topic)
        flush_sentry()
        return 1
    flush_sentry()
    return 0


if __name__ == "__main__":
    sys.exit(main())
