"""Apache Airflow provider for the Camb.ai speech API."""

__version__ = "0.1.0"
