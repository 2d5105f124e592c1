"""The API's request and response models (pydantic): validation and the OpenAPI document from one declaration."""
