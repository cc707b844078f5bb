"""Fixtures shared across test folders."""

import os
import sys

import pytest


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session for the whole run (starting one costs ~15 s); engines must reuse it
    (``getOrCreate``) and leave it running."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("tests")
               .config("spark.sql.shuffle.partitions", "4").config("spark.ui.enabled", "false").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
