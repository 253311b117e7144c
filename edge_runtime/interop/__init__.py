"""Results leaving the device in clinical standards: FHIR R4 resources and the outbox that sends them.

Needs the ``fhir`` extra (fhir.resources, pydantic); nothing here is imported by the device core.
"""
