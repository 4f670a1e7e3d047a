"""MovieLens-1M's fixed vocabularies (its README), shared by the loader and the demo generator."""

GENDERS = ("F", "M")  # MovieLens-1M's values; others are accepted with a warning
# MovieLens-1M README: occupation codes 0-20.
OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
