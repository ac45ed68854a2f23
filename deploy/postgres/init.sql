-- Run once by the postgres image on an empty data directory: MLflow's user store (basic-auth) in a
-- database of its own. MLflow runs and Foreseer's job store share the `foreseer` database.
CREATE DATABASE mlflow_auth OWNER foreseer;
