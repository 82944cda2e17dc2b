"""Load tests and benchmarks: verdict logic, a short locust drop, the bench smoke run."""
