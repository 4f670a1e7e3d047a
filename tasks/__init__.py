"""Pipeline stages: plain functions (testable without Prefect) plus a thin Prefect @task each."""
