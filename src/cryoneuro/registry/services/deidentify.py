"""De-identification of uploaded DICOM files (planning workspace, issue 18 item 1).

Why a list and not a library: the attributes that identify a patient, the people and the
places are listed by DICOM itself (PS3.15 Annex E, Table E.1-1, the Basic Application Level
Confidentiality Profile); removing those of them an image upload can carry, at any depth of
nested sequences, plus every private tag, is a dozen lines over pydicom's dataset API, and
what is finally stored (registry/services/case_images.py) carries no DICOM header at all.
"""

from __future__ import annotations

from typing import Any

#: DICOM attributes removed from every uploaded DICOM file (and its nested sequences):
#: the identifying attributes of the Basic Application Level Confidentiality Profile
#: (DICOM PS3.15 Annex E, Table E.1-1) that describe the patient, the people and the places.
IDENTIFYING = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientComments",
    "MedicalRecordLocator",
    "EthnicGroup",
    "Occupation",
    "MilitaryRank",
    "BranchOfService",
    "CountryOfResidence",
    "RegionOfResidence",
    "PatientReligiousPreference",
    "ReferringPhysicianName",
    "ReferringPhysicianAddress",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "AccessionNumber",
    "StudyID",
    "RequestAttributesSequence",
)


def deidentify(ds: Any) -> list[str]:
    """Remove :data:`IDENTIFYING` attributes (at any depth) and private tags from a pydicom
    dataset in place; returns the keywords removed (sorted, each once)."""
    removed: set[str] = set()

    def strip(dataset: Any) -> None:
        for keyword in IDENTIFYING:
            if keyword in dataset:
                delattr(dataset, keyword)
                removed.add(keyword)
        for element in list(dataset):
            if element.VR == "SQ":
                for item in element.value:
                    strip(item)

    strip(ds)
    had_private = any(e.tag.is_private for e in ds.iterall())
    ds.remove_private_tags()
    if had_private:
        removed.add("(private tags)")
    return sorted(removed)
