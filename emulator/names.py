"""Name pools for the procedurally generated `large` site (see `generator.build_site`).

Tuples, so the seeded Random picks from them in a fixed order. Keep them free of duplicates: the
generator combines them and relies on distinct entries to keep names unique.
"""

from __future__ import annotations

# fmt: off

FIRST_NAMES: tuple[str, ...] = (
    "Aaron", "Abigail", "Adam", "Adriana", "Ahmed", "Aiko", "Alan", "Alejandro", "Alice", "Amara",
    "Amelia", "Amir", "Ana", "Andre", "Andrea", "Angela", "Anika", "Anna", "Anton", "Arjun",
    "Astrid", "Ava", "Beatriz", "Benjamin", "Bianca", "Bruno", "Caleb", "Camila", "Carla", "Carmen",
    "Charlotte", "Chen", "Chiara", "Chris", "Claire", "Daniel", "Daria", "David", "Deepa", "Diego",
    "Dmitri", "Elena", "Elif", "Elijah", "Elise", "Emma", "Eric", "Erik", "Esther", "Fatima",
    "Felix", "Fernando", "Freya", "Gabriel", "Gemma", "George", "Hana", "Hassan", "Helen", "Hiro",
    "Ines", "Irene", "Isaac", "Ivy", "Jack", "Jakob", "James", "Jana", "Javier", "Jessica",
    "Joanna", "John", "Jonas", "Julia", "Kai", "Karen", "Karim", "Kate", "Kenji", "Laila",
    "Lars", "Leah", "Leon", "Liam", "Lily", "Lucas", "Lucia", "Luis", "Magnus", "Maria",
    "Mark", "Martin", "Mateo", "Matthew", "Mei", "Michael", "Mila", "Mohammed", "Nadia", "Naomi",
    "Nathan", "Nina", "Noah", "Oliver", "Oscar", "Paula", "Peter", "Pooja", "Rafael", "Rebecca",
    "Ricardo", "Rosa", "Ryan", "Saanvi", "Sara", "Sean", "Sebastian", "Simone", "Sophie", "Stefan",
    "Tara", "Thomas", "Tobias", "Valentina", "Vera", "William", "Xavier", "Yara", "Yusuf", "Zara",
)

LAST_NAMES: tuple[str, ...] = (
    "Abbott", "Acosta", "Adeyemi", "Agarwal", "Ahmed", "Andersen", "Araujo", "Bailey", "Baker", "Banerjee",
    "Barnes", "Becker", "Bennett", "Berg", "Bianchi", "Bishop", "Blake", "Bose", "Brennan", "Brooks",
    "Campbell", "Carvalho", "Castillo", "Chandra", "Chavez", "Cho", "Clarke", "Cohen", "Collins", "Costa",
    "Cruz", "Dahl", "Das", "Davies", "Diaz", "Dubois", "Duncan", "Edwards", "Eriksson", "Evans",
    "Fernandes", "Fischer", "Fleming", "Fontaine", "Foster", "Garcia", "Gill", "Goldberg", "Gomez", "Gupta",
    "Hansen", "Harper", "Hayashi", "Hernandez", "Hoffmann", "Holm", "Hughes", "Ibrahim", "Ito", "Jansen",
    "Jimenez", "Johansson", "Joshi", "Kaur", "Keller", "Khan", "Kim", "Klein", "Kobayashi", "Kowalczyk",
    "Kumar", "Larsen", "Laurent", "Lee", "Lehmann", "Lima", "Lindberg", "Lopez", "Mahmoud", "Marino",
    "Martins", "Mehta", "Meyer", "Moreau", "Morris", "Mueller", "Murphy", "Nakamura", "Nielsen", "Nguyen",
    "Novak", "Nowak", "Okafor", "Olsen", "Ortiz", "Park", "Pereira", "Perez", "Petersen", "Popescu",
    "Quinn", "Ramirez", "Rao", "Reddy", "Reyes", "Ricci", "Rivera", "Roberts", "Romano", "Rossi",
    "Russo", "Saito", "Santos", "Sato", "Schmidt", "Schulz", "Shah", "Silva", "Singh", "Sorensen",
    "Suzuki", "Svensson", "Takahashi", "Tan", "Taylor", "Thomas", "Torres", "Turner", "Vargas", "Varga",
    "Wagner", "Walker", "Wang", "Watanabe", "Weber", "Williams", "Wong", "Wright", "Yamamoto", "Zhang",
)

LOCALES: tuple[str | None, ...] = (None,) * 12 + ("en_US", "en_GB", "de_DE", "fr_FR", "ja_JP", "es_ES", "pt_BR")

DEPARTMENTS: tuple[str, ...] = (
    "Finance", "Sales", "Marketing", "Data Engineering", "HR", "Executive", "Operations", "Supply Chain",
    "Customer Success", "Product", "Engineering", "Legal", "Procurement", "IT", "Security", "Support",
    "Partnerships", "Retail", "E-Commerce", "Manufacturing", "Logistics", "Risk", "Compliance", "Treasury",
    "Strategy", "Research", "Quality", "Facilities", "Communications", "Analytics", "Pricing", "Revenue Ops",
    "Field Sales", "Inside Sales", "Channel", "Brand", "Digital", "Data Science", "Platform", "Services",
)

GROUP_QUALIFIERS: tuple[str, ...] = (
    "Analysts", "Leads", "Managers", "Viewers", "Publishers", "EMEA", "Americas", "APAC", "North",
    "South", "East", "West", "Contractors", "Interns", "Admins", "Directors", "Team A", "Team B",
    "Reporting", "Power Users",
)

# Second-level and deeper project names (siblings must be unique; the generator checks).
SUBPROJECTS: tuple[str, ...] = (
    "EMEA", "Americas", "APAC", "North America", "LATAM", "DACH", "UK&I", "Nordics", "France", "Benelux",
    "Japan", "ANZ", "India", "Forecasts", "Reporting", "Operations", "Ad Hoc", "Certified", "Staging",
    "Archive", "Sandbox", "Dashboards", "Data Sources", "Monthly Close", "Weekly Reviews", "Planning",
    "Budget", "Audit", "Customer", "Product", "Pricing", "Campaigns", "Web", "Mobile", "Retail",
    "Wholesale", "Partners", "Inventory", "Logistics", "Procurement", "Quality", "Payroll", "Recruiting",
    "Compensation", "Engagement", "Board", "Strategy", "Experiments", "Prototypes", "Production",
    "Development", "Test", "Legacy", "Migrated", "Team Alpha", "Team Beta", "Team Gamma", "Team Delta",
    "Q1", "Q2", "Q3", "Q4", "Self-Service", "Governed", "Regional", "Global", "Executive Views",
    "Deep Dives", "Training", "Templates",
)

SUBJECTS: tuple[str, ...] = (
    "Revenue", "Bookings", "Pipeline", "Margin", "Expense", "Budget", "Forecast", "Cash Flow", "Headcount",
    "Attrition", "Recruiting", "Campaign", "Lead", "Web Traffic", "Customer", "Churn", "Retention",
    "Renewals", "Orders", "Shipments", "Inventory", "Supplier", "Procurement", "Returns", "Support Ticket",
    "NPS", "Product Usage", "Feature Adoption", "Pricing", "Discount", "Quota", "Territory", "Partner",
    "Channel", "Store", "Regional Sales", "Warehouse", "Fleet", "Delivery", "Quality", "Defect", "Audit",
    "Risk", "Compliance", "Claims", "Payroll", "Compensation", "Survey", "Engagement", "Training",
    "Facilities", "Energy", "Carbon", "Travel", "Vendor Spend", "Contract", "Invoice", "Collections",
    "AR Aging", "AP Aging", "Subscription", "ARR", "Usage", "Cohort", "Funnel", "Conversion", "Ad Spend",
    "SEO", "Email", "Social", "Event", "Brand", "Market Share", "Competitor", "Price Elasticity",
    "Demand", "Capacity", "Utilization", "Backlog", "SLA", "Incident", "Uptime", "Cloud Cost", "License",
    "Data Quality", "Pipeline Health", "Query Performance", "Storage", "Asset", "Project Portfolio",
    "Sprint", "Release", "Bug", "Security Alert", "Access Review", "Onboarding", "Tenure", "Diversity",
    "Overtime", "Absence", "Safety", "Sustainability", "Loyalty", "Basket", "Promotion", "Markdown",
    "Assortment", "Footfall", "Call Center", "Chat", "Account Health", "Upsell", "Win-Loss", "Deal Desk",
)

WORKBOOK_KINDS: tuple[str, ...] = (
    "Dashboard", "Overview", "Report", "Analysis", "Tracker", "Scorecard", "KPIs", "Deep Dive", "Summary",
    "Monitor", "Explorer", "Trends", "Review", "Planner", "Insights", "Breakdown", "Drilldown", "Detail",
    "Snapshot", "Health Check", "Weekly", "Monthly", "Daily", "Pulse", "Cockpit",
)

PREFIXES: tuple[str, ...] = (
    "", "", "", "", "", "", "", "", "Global", "EMEA", "Americas", "APAC", "FY23", "FY24", "FY25", "Q1",
    "Q2", "Q3", "Q4", "Team", "Exec", "Regional", "Copy of", "Draft", "Old", "New", "Legacy", "Certified",
)

DATASOURCE_KINDS: tuple[str, ...] = (
    "Data", "Extract", "Facts", "Detail", "Master", "History", "Snapshot", "Daily", "Model", "Feed",
    "Live", "Mart", "Raw", "Clean", "Summary",
)

VIEW_NAMES: tuple[str, ...] = (
    "Overview", "Summary", "Dashboard", "Executive Summary", "Trend", "Detail", "Map", "By Region",
    "By Product", "By Segment", "By Month", "By Channel", "Top 10", "Top Accounts", "Bottom Performers",
    "Variance", "Year over Year", "Forecast", "Pipeline", "Funnel", "Cohorts", "Heatmap", "Scatter",
    "Distribution", "Drill Down", "Table", "Crosstab", "KPI Tiles", "Targets", "Alerts", "Exceptions",
    "Data Quality", "Definitions", "About", "Filters", "Sheet 1", "Sheet 2", "Sheet 3", "Sheet 4",
    "Dashboard 1", "Dashboard 2", "Story", "Story 1", "Weekly View", "Monthly View", "Daily View",
    "Geo Breakdown", "Leaderboard", "Comparison", "Mix", "Run Rate", "Backlog", "Aging", "Utilization",
    "Capacity", "Outliers", "Notes", "Raw Data", "Calendar", "Timeline",
)

TAGS: tuple[str, ...] = (
    "kpi", "certified", "weekly", "monthly", "daily", "exec", "draft", "deprecated", "pii", "finance",
    "sales", "marketing", "ops", "hr", "sox", "gdpr", "customer", "product", "self-service", "training",
)

CONNECTION_TYPES: tuple[str, ...] = (
    "snowflake", "snowflake", "snowflake", "postgres", "postgres", "sqlserver", "sqlserver", "redshift",
    "bigquery", "oracle", "mysql", "databricks", "salesforce", "excel-direct", "excel-direct", "textscan",
    "hyper", "google-analytics",
)

CONNECTION_SERVERS: dict[str, tuple[str, str, str]] = {
    "snowflake": ("acme.snowflakecomputing.com", "443", "TABLEAU_SVC"),
    "postgres": ("pg-analytics.internal", "5432", "tableau_reader"),
    "sqlserver": ("sql-prod-01.internal", "1433", "tableau"),
    "redshift": ("acme-dw.c1x2y3.us-east-1.redshift.amazonaws.com", "5439", "tableau"),
    "bigquery": ("bigquery.googleapis.com", "443", "tableau@acme-analytics.iam.gserviceaccount.com"),
    "oracle": ("erp-db.internal", "1521", "TABLEAU_RO"),
    "mysql": ("support-db.internal", "3306", "readonly"),
    "databricks": ("adb-1234567890.12.azuredatabricks.net", "443", "token"),
    "salesforce": ("login.salesforce.com", "443", "integration@acme.example.com"),
    "excel-direct": ("", "", ""),
    "textscan": ("", "", ""),
    "hyper": ("", "", ""),
    "google-analytics": ("analytics.google.com", "443", "marketing@example.com"),
}

FLOW_VERBS: tuple[str, ...] = (
    "Clean", "Prep", "Dedup", "Join", "Enrich", "Aggregate", "Anonymize", "Reshape", "Validate", "Load",
)

REFRESH_FAILURES: tuple[str, ...] = (
    (
        'Unable to connect to the server "warehouse.internal". Check that the server is running and that '
        "you have access privileges to the requested database."
    ),
    "The query time resource limit (7200 seconds) was exceeded.",
    "The embedded credentials for this connection have expired. Edit the connection to update them.",
    "[Microsoft][ODBC Driver 17 for SQL Server][SQL Server]Invalid object name 'dbo.fact_sales'.",
    "Snowflake: 390100 (08004): Incorrect username or password was specified.",
    "The extract exceeds the maximum size allowed for this site's storage quota.",
)
# fmt: on
