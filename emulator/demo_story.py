"""The hand-written story of the `demo` site: people, projects, content and the rules between them.

Pure data, read by `generator.build_site("demo")`. Keys (`"dana"`, `"finance"`) only link the tables
to each other; ids are drawn by the generator from its seeded Random. Days are "days before the
reference day" (UTC midnight today); `None` for a last login means "never signed in".

The story, in short: Acme Analytics is a mid-sized company with Finance, Sales (three regions),
Marketing, Data Engineering, HR and Executive projects, a Sandbox and an Archive. People left and
kept their content (Unlicensed owners), some owners have not signed in for over a year, four
extracts fail on every refresh, a contractor can read compensation data through an item rule in
HR's nested project (HR is locked *without* nested projects), and a contractor in Finance sees
the Finance project only through a user Allow that overrides his group's Deny.
"""

from __future__ import annotations

from typing import NamedTuple

SITE_NAME = "Acme Analytics"
DOMAIN = "example.com"


class Person(NamedTuple):
    key: str
    full_name: str
    role: str
    groups: tuple[str, ...]
    last_login_days: int | None  # None: never signed in
    created_days: int
    locale: str | None = None
    login: str | None = None  # sign-in name before the @; default first.last


# fmt: off
# The first administrator in this table is the site administrator `SiteState.site_admin()` returns.
PEOPLE: tuple[Person, ...] = (
    Person("admin", "Alex Morgan", "SiteAdministratorCreator", ("admins", "site_admins"), 0, 1460, "en_US", "admin"),
    Person("mchen", "Marcus Chen", "SiteAdministratorExplorer", ("admins", "site_admins"), 2, 1100),
    Person("olivia", "Olivia Brandt", "ServerAdministrator", ("admins",), 9, 1300),
    # Finance
    Person("dana", "Dana Whitfield", "Creator", ("finance", "champions"), 1, 1200),
    Person("raj", "Raj Patel", "Creator", ("finance",), 3, 980),
    Person("emily", "Emily Novak", "ExplorerCanPublish", ("finance",), 6, 720),
    Person("tom", "Tom Becker", "Explorer", ("finance", "contractors"), 15, 240),
    Person("hannah", "Hannah Lindqvist", "Viewer", ("finance",), 40, 610, "sv_SE"),
    Person("victor", "Victor Alvarez", "Creator", ("finance",), 421, 1350),  # inactive, still owns Forecasts
    Person("maya", "Maya Singh", "Explorer", ("finance",), 1, 300),
    # Sales
    Person("jamal", "Jamal Washington", "Creator", ("sales", "champions"), 1, 1000),
    Person("sofia", "Sofia Rossi", "ExplorerCanPublish", ("sales", "emea"), 4, 800, "it_IT"),
    Person("lukas", "Lukas Schneider", "Explorer", ("sales", "emea"), 2, 650, "de_DE"),
    Person("chloe", "Chloé Martin", "Viewer", ("sales", "emea"), 11, 500, "fr_FR"),
    Person("lena", "Lena Fischer", "Viewer", ("sales", "emea"), 33, 410, "de_DE"),
    Person("carlos", "Carlos Mendoza", "Creator", ("sales", "americas"), 5, 900, "es_ES"),
    Person("ashley", "Ashley Brooks", "Explorer", ("sales", "americas"), 8, 560),
    Person("kevin", "Kevin O'Brien", "Viewer", ("sales", "americas"), 30, 700, None, "kevin.obrien"),
    Person("yuki", "Yuki Tanaka", "Explorer", ("sales", "apac"), 3, 450, "ja_JP"),
    Person("wei", "Wei Zhang", "Viewer", ("sales", "apac"), 95, 430, "zh_CN"),
    Person("brian", "Brian Kowalski", "Unlicensed", ("sales", "americas"), 512, 1250),  # left; owns content
    # Marketing
    Person("priya", "Priya Raman", "Creator", ("marketing", "champions"), 1, 1050),
    Person("jellis", "Jordan Ellis", "ExplorerCanPublish", ("marketing",), 7, 600),
    Person("mia", "Mia Thompson", "Explorer", ("marketing",), 12, 380),
    Person("ethan", "Ethan Park", "Viewer", ("marketing",), 60, 290),
    Person("grace", "Grace Liu", "Unlicensed", ("marketing",), 703, 1400),  # left; owns content
    # Data Engineering
    Person("nikolai", "Nikolai Petrov", "Creator", ("data_eng", "champions"), 0, 1150),
    Person("aisha", "Aisha Khan", "Creator", ("data_eng",), 2, 640),
    Person("ben", "Ben Carter", "ExplorerCanPublish", ("data_eng",), 2, 520),
    Person("greg", "Greg Holloway", "Unlicensed", ("data_eng",), 884, 1440),  # left; owns the dead Legacy Ops DB
    Person("svc", "Tableau Service Account", "Creator", ("data_eng",), 0, 1440, None, "svc.tableau"),
    # HR
    Person("laura", "Laura Jensen", "Creator", ("hr",), 3, 870),
    Person("samuel", "Samuel Okafor", "Explorer", ("hr",), 10, 330),
    Person("rachel", "Rachel Stein", "Viewer", ("hr",), 20, 260),
    # Executives
    Person("margaret", "Margaret Hayes", "Viewer", ("executives",), 4, 1300),
    Person("dkim", "David Kim", "Explorer", ("executives", "finance"), 2, 1100),
    Person("isabel", "Isabel Duarte", "Viewer", ("executives", "sales"), 14, 760, "pt_BR"),
    # Contractors
    Person("pat", "Pat Quinn", "Explorer", ("contractors", "marketing"), 21, 180),
    Person("nora", "Nora Feld", "Viewer", ("contractors",), 75, 200),
    Person("omar", "Omar Haddad", "ExplorerCanPublish", ("contractors", "data_eng"), 5, 150),
    # Everyone else
    Person("jlee", "Jordan Lee", "Viewer", ("sales",), None, 3),  # new hire, never signed in
    Person("fiona", "Fiona Walsh", "Unlicensed", (), None, 200),  # invited, never licensed or signed in
    Person("zoe", "Zoe Adler", "ExplorerCanPublish", ("marketing",), 33, 420),
    Person("ivan", "Ivan Sokolov", "Creator", ("data_eng",), 395, 1380),  # inactive, owns Sandbox leftovers
)
# fmt: on

# key -> (name, minimum site role)
GROUPS: dict[str, tuple[str, str | None]] = {
    "all": ("All Users", None),
    "finance": ("Finance", None),
    "sales": ("Sales", "Explorer"),
    "emea": ("Sales EMEA", None),
    "americas": ("Sales Americas", None),
    "apac": ("Sales APAC", None),
    "marketing": ("Marketing", None),
    "data_eng": ("Data Engineering", "Creator"),
    "hr": ("HR", None),
    "executives": ("Executives", "Viewer"),
    "contractors": ("Contractors", None),
    "admins": ("Administrators", None),
    "site_admins": ("Site Admins Tableau", None),
    "champions": ("Tableau Champions", None),
}


class ProjectSpec(NamedTuple):
    key: str
    name: str
    parent: str | None
    owner: str
    lock: str
    description: str
    created_days: int
    updated_days: int
    theme: str  # view-name pool and connection flavour


# fmt: off
PROJECTS: tuple[ProjectSpec, ...] = (
    ProjectSpec("default", "Default", None, "admin", "ManagedByOwner",
                "The default project that was automatically created by Tableau.", 1460, 1460, "generic"),
    ProjectSpec("finance", "Finance", None, "dana", "ManagedByOwner",
                "Financial reporting: P&L, budgets, cash and receivables.", 1190, 30, "finance"),
    ProjectSpec("forecasts", "Forecasts", "finance", "victor", "ManagedByOwner",
                "Revenue, demand and headcount forecasts.", 1100, 420, "finance"),
    ProjectSpec("close", "Month-End Close", "finance", "raj", "ManagedByOwner",
                "Close checklists, journal entry audit and reconciliations.", 900, 12, "finance"),
    ProjectSpec("sales", "Sales", None, "jamal", "ManagedByOwner",
                "Global sales dashboards. Regional teams publish into the region projects.", 990, 8, "sales"),
    ProjectSpec("emea", "EMEA", "sales", "sofia", "ManagedByOwner",
                "Europe, Middle East and Africa.", 800, 20, "sales"),
    ProjectSpec("americas", "Americas", "sales", "carlos", "ManagedByOwner",
                "North and Latin America.", 890, 25, "sales"),
    ProjectSpec("apac", "APAC", "sales", "jamal", "ManagedByOwner",
                "Asia Pacific.", 600, 60, "sales"),
    ProjectSpec("marketing", "Marketing", None, "priya", "ManagedByOwner",
                "Campaigns, web analytics and the lead funnel.", 1040, 5, "marketing"),
    ProjectSpec("data_eng", "Data Engineering", None, "nikolai", "ManagedByOwner",
                "Certified data sources and pipeline monitoring. Publish production sources here.",
                1140, 3, "data"),
    ProjectSpec("staging", "Staging", "data_eng", "aisha", "ManagedByOwner",
                "Work in progress. Nothing here is certified.", 700, 2, "data"),
    ProjectSpec("hr", "HR", None, "laura", "LockedToProjectWithoutNested",
                "People data. Permissions are locked to this project.", 860, 15, "hr"),
    ProjectSpec("people_analytics", "People Analytics", "hr", "laura", "ManagedByOwner",
                "Compensation and engagement analysis.", 500, 40, "hr"),
    ProjectSpec("executive", "Executive", None, "admin", "LockedToProject",
                "Leadership dashboards. Locked: permissions are managed by the project.", 1000, 10, "exec"),
    ProjectSpec("board", "Board Pack", "executive", "admin", "LockedToProject",
                "Material for board meetings.", 700, 45, "exec"),
    ProjectSpec("sandbox", "Sandbox", None, "admin", "ManagedByOwner",
                "Anyone may publish here to try things out. Content is not supported.", 1300, 1, "generic"),
    ProjectSpec("archive", "Archive", None, "admin", "ManagedByOwner",
                "Retired content kept for reference.", 1200, 400, "generic"),
)

# fmt: on


class WorkbookSpec(NamedTuple):
    project: str
    name: str
    owner: str
    tags: tuple[str, ...] = ()
    extract: bool = False
    failure: str | None = None  # a key of FAILURES
    tabs: bool = True
    stale: bool = False  # last updated more than a year ago
    popularity: float = 1.0  # scales the view counts
    description: str = ""
    source: str | None = None  # the connection type of its (embedded) data, when it matters


# fmt: off
WORKBOOKS: tuple[WorkbookSpec, ...] = (
    WorkbookSpec("default", "Superstore", "admin", ("sample",), description="Tableau's sample workbook."),
    WorkbookSpec("default", "Regional Sales (imported)", "ivan", stale=True, popularity=0.2),
    WorkbookSpec("finance", "Quarterly P&L", "dana", ("finance", "kpi"), extract=True, tabs=False,
                 popularity=6, description="Profit and loss by quarter, business unit and region.",
                 source="snowflake"),
    WorkbookSpec("finance", "Budget vs Actuals", "dana", ("finance", "budget"), popularity=4),
    WorkbookSpec("finance", "Cash Flow Overview", "raj", ("finance",), popularity=2),
    WorkbookSpec("finance", "Accounts Receivable Aging", "emily", ("finance", "ar"), extract=True),
    WorkbookSpec("finance", "Expense Analysis", "emily", ("finance",)),
    WorkbookSpec("finance", "Revenue Recognition", "raj", ("finance", "sox"), popularity=1.5),
    WorkbookSpec("forecasts", "Rolling Revenue Forecast", "victor", ("forecast",), stale=True, popularity=1.5),
    WorkbookSpec("forecasts", "Annual Revenue Forecast", "victor", ("forecast",), stale=True),
    WorkbookSpec("forecasts", "Headcount Forecast", "raj", ("forecast", "headcount")),
    WorkbookSpec("forecasts", "Demand Planning Model", "dana", ("forecast",), extract=True, popularity=2),
    WorkbookSpec("forecasts", "Scenario Planner", "victor", stale=True, popularity=0.5),
    WorkbookSpec("close", "Close Checklist Tracker", "emily", ("close",), popularity=1.5),
    WorkbookSpec("close", "Journal Entry Audit", "raj", ("close", "sox")),
    WorkbookSpec("close", "Intercompany Reconciliation", "emily", ("close",), extract=True),
    WorkbookSpec("sales", "Sales Pipeline", "jamal", ("sales", "kpi"), extract=True, tabs=False,
                 popularity=10, description="Open pipeline by stage, region and rep. Refreshed every hour.",
                 source="salesforce"),
    WorkbookSpec("sales", "Win-Loss Analysis", "jamal", ("sales",), popularity=2),
    WorkbookSpec("sales", "Quota Attainment", "jamal", ("sales", "kpi"), popularity=5),
    WorkbookSpec("sales", "Sales Leaderboard", "sofia", ("sales",), popularity=8),
    WorkbookSpec("sales", "Customer 360", "carlos", ("sales", "customer"), extract=True, popularity=3),
    WorkbookSpec("emea", "EMEA Bookings", "sofia", ("sales", "emea"), popularity=3),
    WorkbookSpec("emea", "EMEA Partner Performance", "sofia", ("sales", "emea", "partners")),
    WorkbookSpec("emea", "DACH Territory Review", "sofia", ("sales", "emea")),
    WorkbookSpec("emea", "UK&I Weekly Sales", "sofia", ("sales", "emea", "weekly"), extract=True),
    WorkbookSpec("americas", "Americas Bookings", "carlos", ("sales", "americas"), popularity=3),
    WorkbookSpec("americas", "North America Renewals", "carlos", ("sales", "americas"), extract=True),
    WorkbookSpec("americas", "LATAM Expansion", "brian", ("sales", "americas"), stale=True, popularity=0.4),
    WorkbookSpec("americas", "Account Health", "brian", ("sales", "customer"), stale=True, popularity=0.6),
    WorkbookSpec("apac", "APAC Bookings", "jamal", ("sales", "apac")),
    WorkbookSpec("apac", "Japan Channel Sales", "jamal", ("sales", "apac", "partners"), popularity=0.5),
    WorkbookSpec("marketing", "Campaign Performance", "priya", ("marketing", "kpi"), extract=True,
                 popularity=4),
    WorkbookSpec("marketing", "Web Traffic Dashboard", "jellis", ("marketing", "web"), extract=True,
                 popularity=3),
    WorkbookSpec("marketing", "Lead Funnel", "priya", ("marketing",), popularity=2),
    WorkbookSpec("marketing", "Email Engagement", "jellis", ("marketing", "email")),
    WorkbookSpec("marketing", "Brand Survey Results", "priya", ("marketing", "survey")),
    WorkbookSpec("marketing", "Event ROI", "jellis", ("marketing", "events"), popularity=0.7),
    WorkbookSpec("marketing", "SEO Keyword Tracker", "grace", ("marketing", "web"), stale=True, popularity=0.3),
    WorkbookSpec("data_eng", "Pipeline Health Monitor", "nikolai", ("ops", "monitoring"), popularity=2),
    WorkbookSpec("data_eng", "Warehouse Usage & Cost", "nikolai", ("ops", "cost"), extract=True,
                 failure="timeout", description="Snowflake credit usage by warehouse, role and query.",
                 source="snowflake"),
    WorkbookSpec("data_eng", "Data Quality Scorecard", "aisha", ("ops", "quality")),
    WorkbookSpec("data_eng", "dbt Run History", "ben", ("ops",)),
    WorkbookSpec("staging", "Orders Staging Check", "aisha", ("staging",), popularity=0.3),
    WorkbookSpec("staging", "Test - New Schema", "ben", ("staging", "draft"), popularity=0.1),
    WorkbookSpec("staging", "Copy of Pipeline Health Monitor", "omar", ("staging",), popularity=0.1),
    WorkbookSpec("hr", "Headcount Dashboard", "laura", ("hr", "headcount"), extract=True, popularity=2),
    WorkbookSpec("hr", "Attrition Analysis", "laura", ("hr",)),
    WorkbookSpec("hr", "Recruiting Funnel", "laura", ("hr", "recruiting")),
    WorkbookSpec("hr", "Diversity Metrics", "laura", ("hr",), tabs=False),
    WorkbookSpec("people_analytics", "Compensation Benchmarks", "laura", ("hr", "pii", "compensation"),
                 description="Salary bands against market benchmarks. Contains personal data."),
    WorkbookSpec("people_analytics", "Engagement Survey Results", "laura", ("hr", "survey")),
    WorkbookSpec("executive", "Executive KPI Summary", "dana", ("exec", "kpi"), extract=True, popularity=5),
    WorkbookSpec("executive", "Board Metrics", "dana", ("exec",), tabs=False, popularity=2),
    WorkbookSpec("executive", "Company Scorecard", "dana", ("exec", "kpi"), popularity=3),
    WorkbookSpec("board", "Quarterly Board Pack", "dana", ("exec", "board")),
    WorkbookSpec("board", "Investor Update", "dana", ("exec", "board"), popularity=0.5),
    WorkbookSpec("sandbox", "My First Workbook", "zoe", popularity=0.1),
    WorkbookSpec("sandbox", "Untitled", "ivan", stale=True, popularity=0.05),
    WorkbookSpec("sandbox", "Superstore Practice", "zoe", ("training",), popularity=0.2),
    WorkbookSpec("sandbox", "Copy of Sales Pipeline", "omar", popularity=0.2),
    WorkbookSpec("sandbox", "test123", "ivan", stale=True, popularity=0.05),
    WorkbookSpec("sandbox", "Dana's Scratchpad", "dana", ("draft",), popularity=0.1),
    WorkbookSpec("archive", "Sales Review 2021", "brian", ("sales", "deprecated"), extract=True,
                 failure="missing_table", stale=True, popularity=0.3, source="sqlserver"),
    WorkbookSpec("archive", "Legacy Ops Dashboard", "greg", ("ops", "deprecated"), stale=True, popularity=0.2),
    WorkbookSpec("archive", "Office Attendance Tracker", "ivan", ("deprecated",), stale=True, popularity=0.3),
    WorkbookSpec("archive", "Old Marketing Funnel", "grace", ("marketing", "deprecated"), stale=True,
                 popularity=0.2),
    WorkbookSpec("archive", "Budget 2020 (old)", "victor", ("finance", "deprecated"), stale=True, popularity=0.1),
)

# fmt: on


class DatasourceSpec(NamedTuple):
    project: str
    name: str
    owner: str
    type: str
    extract: bool = False
    failure: str | None = None
    certified: bool = False
    stale: bool = False
    tags: tuple[str, ...] = ()
    server: str | None = None  # overrides the type's usual server
    description: str = ""


# fmt: off
DATASOURCES: tuple[DatasourceSpec, ...] = (
    DatasourceSpec("default", "Sample - Superstore", "admin", "excel-direct", tags=("sample",)),
    DatasourceSpec("finance", "General Ledger", "svc", "snowflake", extract=True, certified=True,
                   tags=("finance", "certified"), description="GL balances and journal lines from the ERP."),
    DatasourceSpec("finance", "AR Invoices", "emily", "sqlserver", tags=("finance", "ar")),
    DatasourceSpec("finance", "Budget Plan", "dana", "excel-direct", tags=("finance", "budget")),
    DatasourceSpec("forecasts", "Forecast Inputs", "raj", "excel-direct", extract=True, tags=("forecast",)),
    DatasourceSpec("sales", "Salesforce Opportunities", "svc", "salesforce", extract=True, certified=True,
                   tags=("sales", "certified")),
    DatasourceSpec("sales", "Sales Orders", "jamal", "snowflake", tags=("sales",)),
    DatasourceSpec("sales", "Quotas", "jamal", "excel-direct", tags=("sales",)),
    DatasourceSpec("emea", "EMEA Bookings", "sofia", "snowflake", tags=("sales", "emea")),
    DatasourceSpec("americas", "Americas Accounts", "carlos", "postgres", extract=True, tags=("sales",)),
    DatasourceSpec("marketing", "Google Analytics Sessions", "jellis", "google-analytics", extract=True,
                   tags=("marketing", "web")),
    DatasourceSpec("marketing", "Marketo Leads", "priya", "marketo", extract=True, failure="credentials",
                   tags=("marketing",)),
    DatasourceSpec("marketing", "Campaign Spend", "priya", "excel-direct", tags=("marketing",)),
    DatasourceSpec("data_eng", "Orders (Certified)", "svc", "snowflake", extract=True, certified=True,
                   tags=("certified", "orders"), description="One row per order line. Refreshed nightly."),
    DatasourceSpec("data_eng", "Customers (Certified)", "svc", "snowflake", certified=True,
                   tags=("certified", "customer")),
    DatasourceSpec("data_eng", "Products", "nikolai", "postgres", tags=("orders",)),
    DatasourceSpec("data_eng", "Warehouse Query History", "nikolai", "snowflake", extract=True, tags=("ops",)),
    DatasourceSpec("data_eng", "Pipeline Runs", "aisha", "postgres", tags=("ops",)),
    DatasourceSpec("data_eng", "Inventory Snapshot", "ben", "oracle", extract=True, tags=("inventory",)),
    DatasourceSpec("data_eng", "Support Tickets", "aisha", "mysql", tags=("support",)),
    DatasourceSpec("data_eng", "Web Events", "ben", "bigquery", extract=True, tags=("web",)),
    DatasourceSpec("data_eng", "Ad Spend", "nikolai", "redshift", tags=("marketing",)),
    DatasourceSpec("staging", "orders_staging", "aisha", "postgres", tags=("staging",)),
    DatasourceSpec("staging", "Customers Test Copy", "omar", "hyper", extract=True, tags=("staging",)),
    DatasourceSpec("hr", "Workday Headcount", "laura", "hyper", extract=True, tags=("hr", "pii")),
    DatasourceSpec("hr", "Recruiting Pipeline", "laura", "sqlserver", tags=("hr",)),
    DatasourceSpec("people_analytics", "Compensation Bands", "laura", "excel-direct", tags=("hr", "pii")),
    DatasourceSpec("executive", "Company KPIs", "svc", "snowflake", extract=True, certified=True,
                   tags=("exec", "certified")),
    DatasourceSpec("sandbox", "Superstore Extract", "zoe", "hyper", extract=True, tags=("training",)),
    DatasourceSpec("sandbox", "my_data.csv", "ivan", "textscan", stale=True),
    DatasourceSpec("archive", "Legacy Ops DB", "greg", "sqlserver", extract=True, failure="unreachable",
                   stale=True, tags=("ops", "deprecated"), server="warehouse.internal"),
    DatasourceSpec("archive", "Sales 2021 Snapshot", "brian", "hyper", stale=True, tags=("sales", "deprecated")),
)

# fmt: on


class FlowSpec(NamedTuple):
    project: str
    name: str
    owner: str
    description: str
    failure: str | None = None


# fmt: off
FLOWS: tuple[FlowSpec, ...] = (
    FlowSpec("data_eng", "Clean Orders", "nikolai", "Deduplicates and conforms raw orders before the nightly load."),
    FlowSpec("staging", "Customer Dedup", "aisha", "Fuzzy-matches customer records across CRM and billing.",
             failure="flow_output"),
    FlowSpec("sales", "Weekly Pipeline Prep", "jamal", "Joins opportunities with quotas for the weekly review."),
    FlowSpec("hr", "HR Anonymizer", "laura", "Removes names and ids from HR extracts for People Analytics."),
    FlowSpec("marketing", "Campaign Attribution Prep", "jellis", "Multi-touch attribution inputs."),
)

# Reasons a refresh fails every time (the item's `refresh_failure`).
FAILURES: dict[str, str] = {
    "unreachable": (
        'Unable to connect to the server "warehouse.internal". Check that the server is running and that '
        "you have access privileges to the requested database."
    ),
    "timeout": "The query time resource limit (7200 seconds) was exceeded.",
    "credentials": (
        'Unable to connect to the data source "Marketo Leads": the embedded credentials for '
        '"marketo" have expired. Edit the connection to update the embedded credentials.'
    ),
    "missing_table": (
        "[Microsoft][ODBC Driver 17 for SQL Server][SQL Server]Invalid object name 'dbo.sales_2021'. "
        "The table may have been dropped or renamed."
    ),
    "flow_output": (
        "The flow run failed in output step 'Write to staging.customers': permission denied for schema "
        "staging."
    ),
}
# Transient failures that show up once in the job history of otherwise healthy items.
TRANSIENT_FAILURES: tuple[str, ...] = (
    "Communication with the Tableau Server Data Engine was lost. The backgrounder process restarted.",
    "The connection to the data source was reset by the peer (SSL SYSCALL error: EOF detected).",
)

# name, frequency, start, interval hours (Hourly) or week days (Weekly), state, priority
SCHEDULES: tuple[tuple[str, str, str, int | tuple[str, ...] | None, str, int], ...] = (
    ("Every Hour", "Hourly", "00:00:00", 1, "Active", 50),
    ("Every 4 Hours", "Hourly", "02:00:00", 4, "Active", 50),
    ("Early Morning", "Daily", "04:00:00", None, "Active", 30),
    ("Nightly", "Daily", "01:00:00", None, "Active", 50),
    ("Weekday Mornings", "Weekly", "06:00:00", ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
     "Active", 50),
    ("Saturday Night", "Weekly", "22:00:00", ("Saturday",), "Active", 70),
    ("Legacy Sunday Refresh", "Weekly", "03:00:00", ("Sunday",), "Suspended", 90),
)

# Which schedule refreshes which extract (by item name); unlisted extracts go to "Nightly".
TASK_SCHEDULES: dict[str, str] = {
    "Sales Pipeline": "Every Hour",
    "Salesforce Opportunities": "Every 4 Hours",
    "Customer 360": "Every 4 Hours",
    "Web Traffic Dashboard": "Every 4 Hours",
    "General Ledger": "Early Morning",
    "Quarterly P&L": "Early Morning",
    "Executive KPI Summary": "Early Morning",
    "Company KPIs": "Early Morning",
    "Orders (Certified)": "Nightly",
    "Warehouse Usage & Cost": "Nightly",
    "Legacy Ops DB": "Nightly",
    "Marketo Leads": "Weekday Mornings",
    "UK&I Weekly Sales": "Weekday Mornings",
    "Sales Review 2021": "Saturday Night",
    "Superstore Extract": "Saturday Night",
    "Customers Test Copy": "Saturday Night",
}
# How many refreshes in a row have failed, for the always-failing extracts.
FAILED_COUNTS: dict[str, int] = {"Legacy Ops DB": 21, "Warehouse Usage & Cost": 4, "Marketo Leads": 9,
                                 "Sales Review 2021": 6}

# Sheet names per project theme; the generator picks 2-8 per workbook (the first one is the landing view).
VIEW_NAMES: dict[str, tuple[str, ...]] = {
    "finance": ("Overview", "P&L Summary", "Revenue by Region", "Expense Detail", "Variance to Budget",
                "Monthly Trend", "Cost Centers", "Margin by Product", "Cash Position", "Top Accounts",
                "Forecast Accuracy", "Detail"),
    "sales": ("Overview", "Pipeline by Stage", "Bookings Trend", "Rep Detail", "Territory Map", "Win Rate",
              "Top Opportunities", "Forecast vs Quota", "Account List", "Product Mix"),
    "marketing": ("Overview", "Channel Performance", "Campaign Detail", "Funnel", "Cost per Lead",
                  "Web Sessions", "Geo Breakdown", "Attribution", "Email Opens"),
    "data": ("Overview", "Job Runtimes", "Failures", "Freshness", "Row Counts", "Credit Usage",
             "Query Detail", "Table Sizes"),
    "hr": ("Overview", "Headcount by Department", "Attrition Trend", "Hiring Funnel", "Tenure Distribution",
           "Compensation Bands", "Survey Results", "Open Requisitions"),
    "exec": ("Executive Summary", "Revenue", "Profitability", "Customer Growth", "Headcount", "Risks",
             "Board Narrative"),
    "generic": ("Dashboard 1", "Sheet 1", "Sheet 2", "Sheet 3", "Map", "Trend", "Detail"),
}
STORY_VIEWS = frozenset({"Board Narrative"})
DASHBOARD_WORDS = ("Overview", "Summary", "Dashboard")

# Connection settings per type: server address, port, user name.
CONNECTION_SERVERS: dict[str, tuple[str, str, str]] = {
    "postgres": ("pg-analytics.internal", "5432", "tableau_reader"),
    "snowflake": ("acme.snowflakecomputing.com", "443", "TABLEAU_SVC"),
    "sqlserver": ("sql-prod-01.internal", "1433", "tableau"),
    "oracle": ("erp-db.internal", "1521", "TABLEAU_RO"),
    "mysql": ("support-db.internal", "3306", "readonly"),
    "redshift": ("acme-dw.c1x2y3.us-east-1.redshift.amazonaws.com", "5439", "tableau"),
    "bigquery": ("bigquery.googleapis.com", "443", "tableau@acme-analytics.iam.gserviceaccount.com"),
    "salesforce": ("login.salesforce.com", "443", "integration@acme.example.com"),
    "marketo": ("123-ABC-456.mktorest.com", "443", "tableau-integration"),
    "google-analytics": ("analytics.google.com", "443", "marketing@example.com"),
    "excel-direct": ("", "", ""),
    "textscan": ("", "", ""),
    "hyper": ("", "", ""),
}
# The direct connection type a workbook in a theme uses when it does not use a published source.
THEME_CONNECTIONS: dict[str, tuple[str, ...]] = {
    "finance": ("snowflake", "sqlserver", "excel-direct"),
    "sales": ("snowflake", "salesforce", "excel-direct"),
    "marketing": ("google-analytics", "bigquery", "excel-direct"),
    "data": ("snowflake", "postgres", "redshift"),
    "hr": ("hyper", "sqlserver", "excel-direct"),
    "exec": ("snowflake", "excel-direct"),
    "generic": ("excel-direct", "textscan", "hyper"),
}

# --------------------------------------------------------------------------------------------------
# Permission rules. A grantee is "g:<group key>" or "u:<person key>"; capabilities are a template
# name from `generator.TEMPLATES` or a tuple of REST capability names (semantics §4.4).
Grant = tuple[str, "str | tuple[str, ...]", str]
ALLOW, DENY = "Allow", "Deny"

# Rules on the projects themselves. Projects nested under a LockedToProject project (Board Pack)
# get their controlling project's rules instead, as Tableau does.
PROJECT_RULES: dict[str, list[Grant]] = {
    "default": [("g:all", "project:view", ALLOW)],
    "finance": [
        ("g:finance", "project:publish", ALLOW),
        ("g:executives", "project:view", ALLOW),
        ("g:contractors", "project:view", DENY),
        ("u:tom", "project:view", ALLOW),  # a user Allow overrides his Contractors group's Deny
    ],
    "forecasts": [
        ("g:finance", "project:view", ALLOW),
        ("g:executives", "project:view", ALLOW),
        ("u:maya", "project:publish", ALLOW),
    ],
    "close": [("g:finance", "project:publish", ALLOW), ("g:contractors", "project:view", DENY)],
    "sales": [
        ("g:sales", "project:publish", ALLOW),
        ("g:all", "project:view", ALLOW),
        ("u:carlos", ("ProjectLeader",), ALLOW),
    ],
    "emea": [("g:emea", "project:publish", ALLOW), ("g:sales", "project:view", ALLOW)],
    "americas": [("g:americas", "project:publish", ALLOW), ("g:sales", "project:view", ALLOW)],
    "apac": [("g:apac", "project:publish", ALLOW), ("g:sales", "project:view", ALLOW)],
    "marketing": [("g:marketing", "project:publish", ALLOW), ("g:all", "project:view", ALLOW)],
    "data_eng": [
        ("g:data_eng", "project:publish", ALLOW),
        ("g:all", "project:view", ALLOW),
        ("u:aisha", ("ProjectLeader",), ALLOW),
        ("g:contractors", ("Write",), DENY),
    ],
    "staging": [("g:data_eng", "project:publish", ALLOW), ("g:contractors", ("Write",), DENY)],
    "hr": [
        ("g:hr", "project:publish", ALLOW),
        ("g:executives", "project:view", ALLOW),
        ("g:contractors", "project:view", DENY),
    ],
    "people_analytics": [("g:hr", "project:publish", ALLOW)],
    "executive": [
        ("g:executives", "project:view", ALLOW),
        ("u:dana", "project:publish", ALLOW),
        ("g:contractors", "project:view", DENY),
    ],
    "sandbox": [("g:all", "project:publish", ALLOW), ("g:champions", ("ProjectLeader",), ALLOW)],
    "archive": [("g:all", "project:view", ALLOW), ("g:admins", "project:publish", ALLOW)],
}

# Project default permissions per content type (what new content gets; what governs locked content).
DEFAULT_RULES: dict[str, dict[str, list[Grant]]] = {
    "default": {
        "workbooks": [("g:all", "wb:view", ALLOW)],
        "datasources": [("g:all", "ds:view", ALLOW)],
        "flows": [("g:all", "flow:view", ALLOW)],
    },
    "finance": {
        "workbooks": [
            ("g:finance", "wb:explore", ALLOW),
            ("g:executives", "wb:view", ALLOW),
            ("g:contractors", ("ExportData", "ViewUnderlyingData", "ExportXml"), DENY),
        ],
        "datasources": [("g:finance", "ds:explore", ALLOW), ("g:contractors", ("Connect",), DENY)],
        "flows": [("g:finance", "flow:run", ALLOW)],
    },
    "forecasts": {
        "workbooks": [("g:finance", "wb:explore", ALLOW), ("g:executives", "wb:view", ALLOW)],
        "datasources": [("g:finance", "ds:explore", ALLOW)],
        "flows": [("g:finance", "flow:view", ALLOW)],
    },
    "close": {
        "workbooks": [("g:finance", "wb:explore", ALLOW), ("g:contractors", ("Read",), DENY)],
        "datasources": [("g:finance", "ds:explore", ALLOW)],
        "flows": [("g:finance", "flow:view", ALLOW)],
    },
    "sales": {
        "workbooks": [
            ("g:sales", "wb:explore", ALLOW),
            ("g:all", "wb:view", ALLOW),
            ("g:contractors", ("ViewUnderlyingData",), DENY),
        ],
        "datasources": [("g:sales", "ds:explore", ALLOW), ("g:all", "ds:view", ALLOW)],
        "flows": [("g:sales", "flow:run", ALLOW)],
    },
    "emea": {
        "workbooks": [("g:emea", "wb:explore", ALLOW), ("g:sales", "wb:view", ALLOW)],
        "datasources": [("g:emea", "ds:explore", ALLOW), ("g:sales", "ds:view", ALLOW)],
        "flows": [("g:emea", "flow:view", ALLOW)],
    },
    "americas": {
        "workbooks": [("g:americas", "wb:explore", ALLOW), ("g:sales", "wb:view", ALLOW)],
        "datasources": [("g:americas", "ds:explore", ALLOW), ("g:sales", "ds:view", ALLOW)],
        "flows": [("g:americas", "flow:view", ALLOW)],
    },
    "apac": {
        "workbooks": [("g:apac", "wb:explore", ALLOW), ("g:sales", "wb:view", ALLOW)],
        "datasources": [("g:apac", "ds:explore", ALLOW), ("g:sales", "ds:view", ALLOW)],
        "flows": [("g:apac", "flow:view", ALLOW)],
    },
    "marketing": {
        "workbooks": [("g:marketing", "wb:explore", ALLOW), ("g:all", "wb:view", ALLOW)],
        "datasources": [("g:marketing", "ds:explore", ALLOW)],
        "flows": [("g:marketing", "flow:run", ALLOW)],
    },
    "data_eng": {
        "workbooks": [("g:data_eng", "wb:explore", ALLOW), ("g:all", "wb:view", ALLOW)],
        "datasources": [
            ("g:all", "ds:view", ALLOW),
            ("g:data_eng", "ds:publish", ALLOW),
            ("g:contractors", ("ExportXml",), DENY),
        ],
        "flows": [("g:data_eng", "flow:publish", ALLOW), ("g:contractors", ("Execute",), DENY)],
    },
    "staging": {
        "workbooks": [("g:data_eng", "wb:explore", ALLOW)],
        "datasources": [("g:data_eng", "ds:explore", ALLOW)],
        "flows": [("g:data_eng", "flow:run", ALLOW)],
    },
    "hr": {
        "workbooks": [
            ("g:hr", "wb:explore", ALLOW),
            ("g:executives", "wb:view", ALLOW),
            ("g:contractors", ("Read",), DENY),
        ],
        "datasources": [("g:hr", "ds:explore", ALLOW), ("g:contractors", ("Read", "Connect"), DENY)],
        "flows": [("g:hr", "flow:run", ALLOW)],
    },
    "people_analytics": {
        "workbooks": [("g:hr", "wb:explore", ALLOW)],
        "datasources": [("g:hr", "ds:explore", ALLOW)],
        "flows": [("g:hr", "flow:view", ALLOW)],
    },
    "executive": {
        "workbooks": [
            ("g:executives", "wb:view", ALLOW),
            ("g:executives", ("ShareView", "RunExplainData"), ALLOW),
            ("g:admins", "wb:view", ALLOW),
            ("g:contractors", ("Read",), DENY),
        ],
        "datasources": [("g:executives", "ds:view", ALLOW)],
        "flows": [("g:executives", "flow:view", ALLOW)],
    },
    "sandbox": {
        "workbooks": [("g:all", "wb:explore", ALLOW)],
        "datasources": [("g:all", "ds:explore", ALLOW)],
        "flows": [("g:all", "flow:run", ALLOW)],
    },
    "archive": {
        "workbooks": [("g:all", "wb:view", ALLOW)],
        "datasources": [("g:all", "ds:view", ALLOW)],
        "flows": [("g:all", "flow:view", ALLOW)],
    },
}

# Rules added to one item on top of what it got from its project when published (customizable
# projects only: a locked project's content carries exactly the project's template).
ITEM_RULES: dict[tuple[str, str], list[Grant]] = {
    ("workbooks", "Budget vs Actuals"): [("u:priya", ("Read", "Filter", "ExportImage"), ALLOW)],
    ("workbooks", "Revenue Recognition"): [("u:tom", ("Read",), DENY)],
    ("workbooks", "Sales Leaderboard"): [("g:executives", ("Read", "Filter", "ExportImage"), ALLOW)],
    ("workbooks", "Customer 360"): [
        ("g:contractors", ("Read",), DENY),
        ("u:ashley", ("ExportData", "ViewUnderlyingData"), DENY),
    ],
    ("workbooks", "Compensation Benchmarks"): [
        ("g:contractors", ("Read", "Filter"), ALLOW),  # the finding: HR's lock does not reach nested projects
        ("u:pat", ("Read", "Filter", "ExportData", "ViewUnderlyingData"), ALLOW),
    ],
    ("workbooks", "Campaign Performance"): [("g:contractors", "wb:explore", ALLOW)],
    ("workbooks", "Copy of Sales Pipeline"): [("g:all", ("Read",), DENY)],
    ("datasources", "Salesforce Opportunities"): [
        ("u:omar", ("Connect",), DENY),
        ("g:marketing", ("Read", "Connect"), ALLOW),
    ],
    ("datasources", "Compensation Bands"): [("u:pat", ("Read", "Connect"), ALLOW)],
    ("flows", "Clean Orders"): [("u:omar", ("Execute",), ALLOW)],  # overrides Contractors' Execute Deny
    ("flows", "Weekly Pipeline Prep"): [("u:isabel", ("Read",), ALLOW), ("g:contractors", ("Read",), DENY)],
}

# Sheets of workbooks that hide tabs: (workbook, view) -> rules added to the workbook's copy.
VIEW_RULES: dict[tuple[str, str], list[Grant]] = {
    ("Quarterly P&L", "Margin by Product"): [("g:contractors", ("Read",), DENY), ("u:hannah", ("Read",), DENY)],
    ("Quarterly P&L", "Detail"): [("g:executives", ("ExportData", "ViewUnderlyingData"), ALLOW)],
    ("Sales Pipeline", "Rep Detail"): [("g:americas", ("ExportData",), DENY), ("u:carlos", ("ExportData",), ALLOW)],
    ("Sales Pipeline", "Overview"): [("g:executives", ("Read", "Filter"), ALLOW)],
}

# Fixed sheet lists for the workbooks whose views carry rules above.
FIXED_VIEWS: dict[str, tuple[str, ...]] = {
    "Quarterly P&L": ("Overview", "P&L Summary", "Margin by Product", "Variance to Budget", "Detail"),
    "Sales Pipeline": ("Overview", "Pipeline by Stage", "Rep Detail", "Top Opportunities", "Forecast vs Quota"),
    "Quarterly Board Pack": ("Executive Summary", "Revenue", "Profitability", "Risks", "Board Narrative"),
}
# fmt: on
