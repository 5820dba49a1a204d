"""Small pure helpers shared across the provider: no Airflow runtime, no I/O."""
