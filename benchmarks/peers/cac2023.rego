# The CAC-2023 pack (policies/cn-cac-2023-draft) in Rego, for benchmarks/run.py.
#
# The input is the facegate request itself.  Query `data.facegate.cac2023.decision`:
# {"allow": bool, "deny": set of forbid ids that apply, "permit": set of permit ids that apply}.
#
# Only the rules that can change the decision are here (forbids in enforce mode and permits).
# The pack's variables are helper rules.  Rego treats a missing field as undefined (the body
# fails), where facegate's forbid fails closed on an evaluation error; where the pack reads a
# field without has() (cn23-06, cn23-13, cn23-14) the missing field is written as its own rule
# body that makes the forbid apply.  An `unless` of several items lifts a forbid only when all
# of them hold.

package facegate.cac2023

import rego.v1

default allow := false

allow if {
	count(deny) == 0
	count(permit) > 0
}

decision := {"allow": allow, "deny": deny, "permit": permit}

# --- variables ---------------------------------------------------------------------------

processes if input.operation != "erase"

identity_check if input.operation in {"verify", "identify", "enroll"}

in_prc if input.jurisdiction == "CN"

in_prc if {
	startswith(input.jurisdiction, "CN-")
	not input.jurisdiction in {"CN-HK", "CN-MO", "CN-TW", "CN-91", "CN-92", "CN-71"}
}

consent_in_force if {
	input.consent.type in {"separate", "written"}
	input.consent.given_by
	not input.consent.withdrawn
	input.purpose in input.consent.purposes
}

separate_consent if {
	consent_in_force
	input.consent.type == "separate"
}

guardian_consent if {
	consent_in_force
	input.consent.given_by == "guardian"
}

legal_ground_cited if {
	input.legal_basis.ground in {"law_requires", "national_security", "public_security", "emergency"}
	count(input.legal_basis.citation) > 0
}

law_requires_face if {
	input.legal_basis.ground == "law_requires"
	count(input.legal_basis.citation) > 0
}

security_or_emergency if input.legal_basis.ground in {"national_security", "public_security", "emergency"}

public_place if input.place.type == "public_place"

public_place if input.place.open_to_public == true

business_premises if input.place.type == "business_premises"

business_premises if {
	input.place.type == "public_place"
	input.actor.sector in {"hotel", "bank", "station", "airport", "stadium", "exhibition_hall", "museum", "art_gallery", "library"}
}

property_party if input.actor.role == "property_manager"

property_party if input.place.type == "property_management_area"

property_party if input.actor.sector == "residential_property"

property_entry if property_party

alternative_offered if input.alternative.offered == true

declined_face if input.subject.declined_face == true

remote_candidate if {
	input.operation in {"identify", "verify"}
	public_place
}

remote_candidate if {
	input.operation in {"identify", "verify"}
	input.place.type == "business_premises"
}

remote_exception if {
	security_or_emergency
	input.capture.initiated_by in {"subject", "interested_party"}
}

# --- permits -----------------------------------------------------------------------------

permit contains "cn23-05-consent" if {
	processes
	consent_in_force
}

permit contains "cn23-05-law-dispenses-with-consent" if {
	processes
	legal_ground_cited
}

permit contains "cn23-05-erasure" if input.operation == "erase"

# --- forbids -----------------------------------------------------------------------------

deny contains "cn23-02-outside-prc" if not in_prc

deny contains "cn23-04-specific-purpose" if {
	processes
	input.purpose == "other"
}

deny contains "cn23-06-private-space" if {
	processes
	not input.place.type # read without has(): an error, so the forbid applies
}

deny contains "cn23-06-private-space" if {
	processes
	input.place.type == "private_space"
}

deny contains "cn23-07-public-security-only" if {
	processes
	public_place
	input.purpose != "public_security"
	not separate_consent
}

deny contains "cn23-07-signage" if {
	processes
	public_place
	not input.place.signage == true
}

deny contains "cn23-09-declined-not-forced" if {
	business_premises
	identity_check
	declined_face
	not law_requires_face
}

deny contains "cn23-09-alternative-required" if {
	business_premises
	identity_check
	not alternative_offered
	not law_requires_face
	not input.capture.mode == "remote_passive"
}

deny contains "cn23-10-active-participation" if {
	input.operation == "verify"
	not input.capture.mode == "cooperative"
	not law_requires_face
}

deny contains "cn23-10-purpose-prompt" if {
	input.operation == "verify"
	not input.capture.purpose_prompt_shown == true
	not law_requires_face
}

deny contains "cn23-11-no-raw-image-retention" if {
	processes
	input.storage.raw_image == "retain"
	not separate_consent
	not legal_ground_cited
}

deny contains "cn23-12-not-only-way-in" if {
	property_entry
	identity_check
	not alternative_offered
}

deny contains "cn23-12-declined-face" if {
	property_entry
	identity_check
	declined_face
}

deny contains "cn23-13-remote-identification" if {
	remote_candidate
	not input.capture.mode # read without has(): an error, so the forbid applies
}

deny contains "cn23-13-remote-identification" if {
	remote_candidate
	input.capture.mode == "remote_passive"
	not remote_exception
}

deny contains "cn23-14-sensitive-attributes" if {
	input.operation == "analyze"
	not input.attributes # read without has(): an error, so the forbid applies
}

deny contains "cn23-14-sensitive-attributes" if {
	input.operation == "analyze"
	some attribute in input.attributes
	attribute in {"race", "ethnicity", "religion", "health", "social_class"}
	not security_or_emergency
	not separate_consent
}

deny contains "cn23-15-human-review-required" if {
	input.operation in {"verify", "identify"}
	input.purpose in {"social_assistance", "real_estate_disposal"}
	not input.review.human_review == true
}

deny contains "cn23-16-guardian-consent" if {
	processes
	input.subject.age < 14
	not guardian_consent
}

deny contains "cn23-16-age-unknown-school" if {
	processes
	not input.subject.age
	input.actor.sector == "school"
	not guardian_consent
}

deny contains "cn23-17-pia-required" if {
	processes
	not input.actor.pia.completed == true
}

deny contains "cn23-17-pia-covers-purpose" if {
	processes
	input.actor.pia.completed == true
	not input.actor.pia.covers_purpose == true
}
