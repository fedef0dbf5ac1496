"""The service's routes, one router per audience: the REST API for analyses, SageMaker's two calls,
live sessions, health, and the browser pages."""
