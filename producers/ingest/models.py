"""The wire shapes of levers-ingest: the request and answer models, in Levers' field names.

A contact field is declared once, in `ContactIn`: its JSON name (the alias, Levers' camelCase),
its JSON type (checked here: a wrong type is a 422 for the whole request, nothing enqueued) and
its Python name (the attribute, which is the name `worker.contacts.validate_contact` takes).
The value rules (a valid phone number, a UUID, sizes, the reserved metadata key) are
`validate_contact`'s, so a contact that breaks one is rejected on its own, with the reason code
the Python producer gives, and the others of its request go ahead.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
)

from worker.contacts import (
    MAX_METADATA_BYTES,
    MAX_NAME_LENGTH,
    REJECT_REASONS,
    RESERVED_METADATA_KEY,
)

EXAMPLE_CONTACT: dict[str, Any] = {
    "numberToCall": "+966501234567",
    "firstName": "Sara",
    "lastName": "Al-Qahtani",
    "metadata": {"crm_id": "42"},
    "promptTags": {"amount": "120"},
    "aiSettingsTemplateId": "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10",
    "updateExisting": False,
    "dedupeKey": "invoice-2024-0042",
}


class ContactIn(BaseModel):
    """One contact to call. Every field but `numberToCall` may be absent or null."""

    model_config = ConfigDict(
        extra="forbid",
        title="Contact",
        json_schema_extra={"examples": [EXAMPLE_CONTACT]},
    )

    number: StrictStr = Field(
        alias="numberToCall",
        description="The number to call: +E.164, or national with `region` (or the server's "
        "LEVERS_DEFAULT_REGION). Normalised to E.164; an invalid one is rejected "
        "(`unparseable_number`, `invalid_number`).",
        examples=["+966501234567"],
    )
    first_name: StrictStr | None = Field(
        None, alias="firstName", description=f"At most {MAX_NAME_LENGTH} characters."
    )
    last_name: StrictStr | None = Field(
        None, alias="lastName", description=f"At most {MAX_NAME_LENGTH} characters."
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description=f"Any JSON object of at most {MAX_METADATA_BYTES} bytes serialised; Levers "
        "echoes it back in its `phone_call.ended` webhook as `requestMetadata`. The key "
        f"`{RESERVED_METADATA_KEY}` is reserved (the worker adds the batch and contact ids "
        "there).",
    )
    prompt_tags: dict[str, StrictStr] | None = Field(
        None, alias="promptTags", description="Values for the template's prompt: strings only."
    )
    template_id: StrictStr | None = Field(
        None,
        alias="aiSettingsTemplateId",
        description="A UUID; absent or null for the account's default template.",
    )
    update_existing: StrictBool | None = Field(
        None, alias="updateExisting", description="Levers' `updateExisting` (default false)."
    )
    dedupe_key: StrictStr | None = Field(
        None,
        alias="dedupeKey",
        description="1 to 200 characters. Contacts of one template and `updateExisting` with "
        "the same dedupe key are called once within the dedupe window; without it, the "
        "number decides.",
    )
    region: StrictStr | None = Field(
        None,
        description="Region code (e.g. SA) for a `numberToCall` in national form.",
        examples=["SA"],
    )
    time_zone: StrictStr | None = Field(
        None,
        alias="timeZone",
        description="The recipient's IANA time zone (e.g. Asia/Riyadh), for calling hours; "
        "absent: the number's own zones (`invalid_time_zone` when unknown).",
        examples=["Asia/Riyadh"],
    )
    not_before: StrictStr | StrictFloat | StrictInt | None = Field(
        None,
        alias="notBefore",
        description="Not called before this time: ISO 8601 with an offset, or epoch seconds "
        "(`invalid_schedule` otherwise). It also waits for its calling hours.",
        examples=["2026-12-03T09:00:00+03:00"],
    )
    expire_at: StrictStr | StrictFloat | StrictInt | None = Field(
        None,
        alias="expireAt",
        description="Never called from this time on: still unsent then, it goes to the dead "
        "letters as `expired`. ISO 8601 with an offset, or epoch seconds; after `notBefore`.",
        examples=["2026-12-05T21:00:00+03:00"],
    )

    def fields(self) -> dict[str, Any]:
        """The contact in the Python API's field names, as `validate_contact` takes it."""
        return self.model_dump(exclude_none=True)


def contacts_adapter(max_contacts: int) -> TypeAdapter[list[ContactIn]]:
    """Validates the list form of the body, with its length bounds."""
    return TypeAdapter(Annotated[list[ContactIn], Field(min_length=1, max_length=max_contacts)])


def request_body(max_contacts: int) -> dict[str, Any]:
    """The OpenAPI requestBody of POST /v1/contacts: one contact, or a list of them."""
    ref = {"$ref": "#/components/schemas/Contact"}
    listed = [
        EXAMPLE_CONTACT,
        {"numberToCall": "+966501234568", "firstName": "Omar"},
        {"numberToCall": "0501234569", "region": "SA", "promptTags": {"amount": "75"}},
    ]
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        ref,
                        {
                            "type": "array",
                            "items": ref,
                            "minItems": 1,
                            "maxItems": max_contacts,
                        },
                    ]
                },
                "examples": {
                    "one": {"summary": "one contact", "value": EXAMPLE_CONTACT},
                    "list": {"summary": "a list of contacts", "value": listed},
                },
            }
        },
    }


def contact_schema() -> dict[str, Any]:
    """The JSON schema of one contact, for the document's components."""
    return ContactIn.model_json_schema(ref_template="#/components/schemas/{model}")


# -- answers ---------------------------------------------------------------------------------


class Accepted(BaseModel):
    index: int = Field(description="Position of the contact in the request (0 for one object).")
    status: Literal["accepted"]
    contact_id: str = Field(
        alias="contactId",
        description="The contact's id: the worker puts it in the contact's metadata "
        f"(`{RESERVED_METADATA_KEY}.contact_id`), so Levers' webhooks can be matched to it.",
    )


class Rejected(BaseModel):
    index: int = Field(description="Position of the contact in the request (0 for one object).")
    status: Literal["rejected"]
    reason: str = Field(description="A stable code: " + ", ".join(REJECT_REASONS) + ".")
    message: str = Field(description="What is wrong, for people.")


class Answer(BaseModel):
    """Each contact's outcome, in the order of the request."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "accepted": 1,
                    "rejected": 1,
                    "contacts": [
                        {
                            "index": 0,
                            "status": "accepted",
                            "contactId": "2b1c6a9e-3f0d-4d55-9a57-6c1b9c6f7e21:0",
                        },
                        {
                            "index": 1,
                            "status": "rejected",
                            "reason": "invalid_number",
                            "message": "the phone number is not a valid number",
                        },
                    ],
                }
            ]
        }
    )

    accepted: int
    rejected: int
    contacts: list[Annotated[Accepted | Rejected, Field(discriminator="status")]]


class Problem(BaseModel):
    detail: str


class Issue(BaseModel):
    loc: list[str | int] = Field(description='Where: e.g. ["body", 3, "numberToCall"].')
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """FastAPI's (and Levers') shape of a validation error."""

    detail: list[Issue]


class Health(BaseModel):
    status: Literal["ok", "ready"]
