"""A labelled grounding set: three decks written the way third parties write them, and questions
asked the way a listener asks them out loud.

Each slide is ``(title, body, notes)``: the body is one bullet per line, ``notes`` is ``None``
when the slide has no speaker notes. Each question is ``(question, answer)`` where ``answer`` is
the 1-based slide that answers it, a list of slides when more than one genuinely does, or
``None`` when the deck does not answer it (for a "the deck doesn't cover that" threshold).

The questions were written from the slides' meaning, before any search ran against them;
``HELD_OUT`` names the deck no ranking change was tuned on.
"""

# Real decks are typeset: en dashes, minus and multiplication signs stay as authors typed them.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import TypedDict


class Deck(TypedDict):
    name: str
    slides: list[tuple[str, str, str | None]]
    questions: list[tuple[str, int | list[int] | None]]


HELD_OUT = "fieldstone_qbr"

# A B2B SaaS sales deck: a follow-up pitch to a prospect after a discovery call.
LEDGERLINE: Deck = {
    "name": "ledgerline_sales",
    "slides": [
        (
            "Ledgerline",
            "Spend control for finance teams that have outgrown spreadsheets\n"
            "Acme Corp · Discovery follow-up · March 2024",
            "Thank them for the time last week. Recap: they're at 400 employees, closing the "
            "books in 12 days, and want to get to 5.",
        ),
        (
            "Agenda",
            "Where you are today\nWhat we heard\nPlatform walkthrough\n"
            "Results from similar teams\nCommercials & next steps",
            None,
        ),
        (
            "What we heard",
            "Month-end close: 12 days\n3 FTEs chasing receipts\nCard spend across 4 tools\n"
            "No pre-approval on SaaS purchases\nAudit flagged T&E controls (FY23)",
            "From the discovery call with Dana (Controller) and Raj (VP Finance). Confirm these "
            "are still accurate before moving on.",
        ),
        (
            "The cost of doing nothing",
            "~$180k / yr of finance time on manual reconciliation\n"
            "2–4% of spend leaks via duplicate & unused subscriptions\n"
            "Late close → late board reporting",
            "The 180k assumes three FTEs spending 60% of their time on reconciliation at a "
            "loaded cost of 100k each.",
        ),
        (
            "Ledgerline in one picture",
            "Cards · Bills · Reimbursements · Procurement\nOne approval engine\n"
            "One ledger sync\nReal-time budgets",
            "Keep this high level; the next slides go deeper on each module.",
        ),
        (
            "Corporate cards",
            "Unlimited virtual cards\nPhysical cards in 30+ countries\n"
            "Per-card limits, merchant locks\nReceipts by text, email, Slack",
            "Cards are issued by our partner bank, Cross River, on the Visa network. 1.5% "
            "cashback on all card spend, paid out monthly.",
        ),
        (
            "Bills & AP",
            "OCR invoice capture\n3-way match against POs\n"
            "ACH, wire, check; international in 40 currencies\nVendor portal",
            "International payments settle in 1–2 business days for major currencies. FX "
            "markup is 0.5% over mid-market.",
        ),
        (
            "Approvals & policy",
            "Multi-step approval chains\nRules by amount, department, vendor, GL code\n"
            "Pre-approval for software purchases\nViolations flagged before payment",
            "This is the answer to their SaaS sprawl: nobody buys software without a request.",
        ),
        (
            "Budgets",
            "Department & project budgets\nLive burn vs. plan\nAlerts at 80% / 100%\n"
            "Owners see only their budgets",
            None,
        ),
        (
            "Accounting sync",
            "NetSuite · QuickBooks · Xero · Sage Intacct\nAuto-coding with learned GL rules\n"
            "Two-way sync\nClose checklist",
            "NetSuite syncs in real time via SuiteTalk; the others every 24 hours. Auto-coding "
            "gets to about 90% accuracy after roughly two months of history.",
        ),
        (
            "Integrations",
            "Slack, Microsoft Teams\nOkta, Azure AD, Google Workspace\n"
            "BambooHR, Rippling, Workday\nOpen API + webhooks",
            "The HRIS sync means new hires get a card on day one and leavers' cards are frozen "
            "automatically.",
        ),
        (
            "Security & compliance",
            "SOC 1 Type II · SOC 2 Type II\nPCI DSS Level 1\nSSO / SAML, SCIM\n"
            "AES-256 at rest, TLS 1.2+ in transit",
            "Hosted in AWS us-east-1 with a replica in us-west-2; EU data residency is "
            "available on Enterprise. Annual pen test by NCC Group, report under NDA.",
        ),
        (
            "Implementation",
            "Wk 1: ERP connection, policies\nWk 2: cards issued, pilot team\n"
            "Wk 3–4: company-wide rollout\nDedicated implementation manager",
            "Median go-live for companies their size is 24 days. Migration from Expensify is "
            "done by our team at no cost.",
        ),
        (
            "Results from similar teams",
            "Close time: 12 → 5 days\n70% fewer receipts chased\n"
            "$240k saved in year one (Brightwave, 600 employees)\nNPS 72",
            "Brightwave is a fintech in Austin; we can set up a reference call with their "
            "Controller, Mei Lin.",
        ),
        (
            "Customer stories",
            "Brightwave: fintech, 600 employees\nHollis & Co: retail, 1,200 employees\n"
            "Orbit Health: healthcare, 350 employees",
            "Hollis consolidated six card programs into one. Orbit Health passed its first SOX "
            "audit using our approval logs.",
        ),
        (
            "Pricing",
            "Core: $0, cards & reimbursements\nPlus: $12 / user / month\nEnterprise: custom\n"
            "Annual contracts, billed quarterly",
            "For Acme at ~400 users we'd propose Plus with the procurement add-on. 15% annual "
            "commit discount if signed this quarter.",
        ),
        (
            "Proposal for Acme",
            "Plus plan, 400 users\nProcurement add-on\nImplementation included\nYear 1: $49,000",
            "The number already includes the 15% discount. The procurement add-on lists at "
            "$8,000 a year.",
        ),
        (
            "Support",
            "24/7 chat & email\nNamed CSM on Plus and above\n99.9% uptime SLA\n"
            "Help center + Ledgerline Academy",
            "Median first response on chat is under 4 minutes.",
        ),
        (
            "Who we are",
            "Founded 2019, New York\n280 employees\nBacked by Index Ventures, Ribbit Capital\n"
            "3,500 customers",
            "Co-founders Priya Natarajan (CEO, ex-Stripe) and Tom Becker (CTO, ex-Brex). "
            "$110M Series C closed in 2023.",
        ),
        (
            "Next steps",
            "Technical deep-dive with IT (Okta, NetSuite)\nReference call: Brightwave\n"
            "Security review\nTarget signature: April 30",
            "Ask who else needs to be in the security review; last time they mentioned their "
            "CISO, Alan.",
        ),
    ],
    "questions": [
        ("What does it cost?", [16, 17]),
        ("So how much would we actually be paying in the first year?", 17),
        ("Is there any discount if we sign soon?", [16, 17]),
        ("Who's behind this company?", 19),
        ("Who started it?", 19),
        ("Is my data safe?", 12),
        ("Where would our data physically live?", 12),
        ("Can we keep our data in Europe?", 12),
        ("How long does it take to get up and running?", 13),
        ("Which bank issues the cards?", 6),
        ("Do we get anything back on card purchases?", 6),
        ("What are the fees when we pay suppliers abroad?", 7),
        ("How fast do payments to foreign vendors arrive?", 7),
        ("Does it work with NetSuite?", 10),
        ("How accurate is the automatic categorisation of transactions?", 10),
        ("How do you stop people from buying software without asking first?", 8),
        ("What happens to someone's card when they leave the company?", 11),
        ("Can we log in with Okta?", [11, 12]),
        ("Go back to the part about budgets.", 9),
        ("What did you take away from our first call?", 3),
        ("How long does our month-end close take right now?", 3),
        ("How much is all this manual work costing us?", 4),
        ("How did you come up with the 180 thousand figure?", 4),
        ("What kind of results have other customers seen?", 14),
        ("Can we talk to one of your customers?", [14, 20]),
        ("Which companies are using it today?", 15),
        ("How did the healthcare company do with their audit?", 15),
        ("What kind of support do we get?", 18),
        ("How quickly does your support team respond?", 18),
        ("What's the uptime guarantee?", 18),
        ("How do employees hand in their receipts?", 6),
        ("What happens after this meeting?", 20),
        ("When are you hoping we'll sign?", 20),
        ("Has anyone done a penetration test on you?", 12),
        ("What does the procurement piece cost on its own?", 17),
        ("Which accounting systems do you connect to?", 10),
        ("How big is your company?", 19),
        ("Will you help us move off Expensify?", 13),
        ("What are we covering today?", 2),
        ("Will I get a warning when a team is about to go over budget?", 9),
        ("Do you have an Android app?", None),
        ("Can we accept crypto payments with this?", None),
        ("How do you compare to Ramp?", None),
        ("Can we run payroll through it?", None),
        ("What if we want to cancel halfway through the contract?", None),
        ("Is the interface available in Japanese?", None),
        ("What's your carbon footprint?", None),
        ("Is the company profitable?", None),
    ],
}

# A quarterly business review with numbers, for an executive audience.
FIELDSTONE_QBR: Deck = {
    "name": "fieldstone_qbr",
    "slides": [
        (
            "Q3 FY24 Quarterly Business Review",
            "Fieldstone · Executive team\nOctober 14, 2024",
            "Goal today: agree Q4 priorities and the hiring plan. Keep questions to the end of "
            "each section.",
        ),
        (
            "Q3 at a glance",
            "ARR $38.2M (+9% QoQ)\nNet new ARR $3.1M vs. $3.5M plan\nGross churn 2.9%\n"
            "NRR 112%\nCash $61M",
            "Headline: good quarter, but we missed net new by about 11% because two enterprise "
            "deals slipped into October.",
        ),
        (
            "ARR bridge",
            "Opening ARR $35.1M\n+ New logos $2.2M\n+ Expansion $1.9M\n− Contraction $0.3M\n"
            "− Churn $0.7M\nClosing ARR $38.2M",
            "Expansion was mostly seat growth at existing utilities customers.",
        ),
        (
            "New business",
            "41 new logos (plan 45)\nAvg. new deal $54k ACV\nSales cycle 74 days (Q2: 81)\n"
            "Win rate 27%",
            "The two slipped deals were Carver Utilities ($420k) and Midland HVAC ($180k). Both "
            "signed in the first week of October.",
        ),
        (
            "Churn & retention",
            "Gross revenue churn 2.9% (Q2: 2.1%)\n9 logos lost, $0.7M ARR\n"
            "Top reason: consolidation after M&A (4 of 9)\nNRR 112% (Q2: 115%)",
            "Largest loss was Apex Home Services ($210k) after they were acquired. We've set up "
            "an early-warning score in Gainsight, see next slide.",
        ),
        (
            "Retention actions",
            "Health score live in Gainsight\nExec sponsor program, top 50 accounts\n"
            "Quarterly value reviews\nRenewal desk from Q4",
            "The health score flagged 6 of the 9 churned accounts more than 60 days out. So it "
            "works; we just didn't act on it.",
        ),
        (
            "Q4 pipeline",
            "Pipeline $14.8M (3.4× coverage)\nCommit $3.9M\nBest case $4.6M\nEnterprise share 46%",
            "Coverage is healthy but enterprise-heavy, so slippage risk remains. "
            "Marketing-sourced pipeline is 38% of the total.",
        ),
        (
            "Segment performance",
            "Enterprise: ARR $17.4M, +13% QoQ\nMid-market: ARR $14.6M, +7%\n"
            "SMB: ARR $6.2M, +3%\nSMB churn 5.8%",
            "SMB is where most of the logo churn sits; we're considering moving SMB to a "
            "self-serve motion in FY25.",
        ),
        (
            "Regional performance",
            "North America 78% of ARR\nUK & Ireland 15%\nANZ 7%\nANZ +22% QoQ",
            "ANZ growth comes from two channel partners in Sydney; first local AE hired in August.",
        ),
        (
            "Product highlights",
            "Scheduling optimiser GA (July)\nOffline mode, mobile app\n"
            "QuickBooks Online integration\nAI job summaries: beta, 40 customers",
            "The optimiser is already used by 210 customers and is the most cited reason in win "
            "notes.",
        ),
        (
            "Product usage",
            "Weekly active technicians 182k (+14%)\nJobs scheduled 6.1M\n"
            "Mobile app rating 4.7\nOptimiser adoption: 31% of accounts",
            None,
        ),
        (
            "Reliability",
            "Uptime 99.95% (SLA 99.9%)\n2 Sev-1 incidents\nP1 MTTR 47 min\nNo SLA credits issued",
            "The August 12 incident was a bad database migration that took scheduling down for "
            "38 minutes in the US. All postmortem actions are closed.",
        ),
        (
            "Customer satisfaction",
            "NPS 46 (Q2: 41)\nCSAT 94%\nSupport tickets −8% QoQ\nFirst response 1h 50m",
            "The NPS jump is mostly offline mode; detractors mention the pricing changes.",
        ),
        (
            "Gross margin & spend",
            "Gross margin 78% (Q2: 76%)\nOpex $11.9M\nBurn $2.4M / quarter\nRule of 40: 41",
            "Margin gain came from renegotiating the AWS commit in June, about $600k a year saved.",
        ),
        (
            "Headcount",
            "312 employees (+18)\nEngineering 118 · GTM 121 · G&A 73\n"
            "Attrition 3.1% / quarter\nOpen roles 27",
            "We're behind on engineering hiring: 9 open eng roles older than 60 days.",
        ),
        (
            "Cash & runway",
            "Cash $61.0M\nRunway 30+ months at current burn\nNo debt\nBurn multiple 0.8",
            "The board asked last quarter about a venture debt facility; we're not pursuing it "
            "for now.",
        ),
        (
            "What went well",
            "Enterprise momentum\nGross margin +2 pts\nNPS +5\nOptimiser GA on time",
            None,
        ),
        (
            "What didn't",
            "Missed net new ARR plan by $0.4M\nSMB churn up\nEngineering hiring behind\n"
            "AI summaries beta slipped 3 weeks",
            "AI summaries slipped because we moved from OpenAI to an in-house model for data "
            "residency reasons.",
        ),
        (
            "Q4 priorities",
            "Close Carver & Midland expansions\nLaunch renewal desk\nAI job summaries GA\n"
            "Hire 15 engineers",
            "These map one-to-one to the OKRs circulated last week.",
        ),
        (
            "FY25 planning assumptions",
            "ARR growth target 40%\nSMB → self-serve\nExpand ANZ team\n"
            "7% price increase on renewals",
            "The price increase is still under discussion with the board; not final.",
        ),
        (
            "Asks of the exec team",
            "Approve 2 more CSMs for the renewal desk\nDecision on SMB self-serve by Nov 15\n"
            "Exec sponsors for top 50 accounts",
            "Each exec would take five to seven accounts.",
        ),
    ],
    "questions": [
        ("What happened with churn last quarter?", 5),
        ("Why are we losing customers?", 5),
        ("Who was the biggest customer we lost?", 5),
        ("How much recurring revenue do we have now?", [2, 3]),
        ("Did we hit the target for new revenue?", [2, 18]),
        ("Which deals slipped?", 4),
        ("How many new customers did we sign?", 4),
        ("How long is it taking to close a deal these days?", 4),
        ("How much came from existing customers buying more?", 3),
        ("What are we doing to keep customers from leaving?", 6),
        ("Does the health score actually work?", 6),
        ("How does next quarter look for sales?", 7),
        ("How much of the pipeline does marketing bring in?", 7),
        ("How are the small customers doing?", 8),
        ("How's Australia going?", 9),
        ("What did we ship this quarter?", 10),
        ("How many customers use the scheduling optimiser?", [10, 11]),
        ("What's the app store rating?", 11),
        ("How many technicians use it every week?", 11),
        ("Did we have any outages?", 12),
        ("What went wrong back in August?", 12),
        ("Are customers happier than last quarter?", 13),
        ("What are the unhappy customers complaining about?", 13),
        ("Why did margins go up?", 14),
        ("How much money are we burning?", [14, 16]),
        ("How many people work here now?", 15),
        ("How long will the money last?", 16),
        ("Are we taking on any debt?", 16),
        ("What were the wins this quarter?", 17),
        ("What went badly?", 18),
        ("Why was the AI feature late?", 18),
        ("What are we focusing on for the rest of the year?", 19),
        ("Are we raising prices?", 20),
        ("What do you need from us?", 21),
        ("How many accounts would each exec look after?", 21),
        ("What's the growth target for next year?", 20),
        ("What's the point of today's meeting?", 1),
        ("What's our net retention?", [2, 5]),
        ("How many engineers are we planning to hire?", [15, 19]),
        ("Go back to the bit about the regions.", 9),
        ("When are we going public?", None),
        ("How did the leadership offsite go?", None),
        ("What's the marketing budget for next year?", None),
        ("Who's replacing the CFO?", None),
        ("Where are we with the SOC 2 audit?", None),
        ("How do we stack up against ServiceTitan?", None),
        ("When is the office move happening?", None),
        ("How much did we spend on the holiday party?", None),
    ],
}

# A technical onboarding deck: product architecture and engineering practice for new hires.
TIDEWATER_ONBOARDING: Deck = {
    "name": "tidewater_onboarding",
    "slides": [
        (
            "Welcome to Platform Engineering",
            "Tidewater · Engineering onboarding\nWeek 1",
            "Introduce yourself and your buddy. Buddy pairs are in the onboarding doc.",
        ),
        (
            "Your first two weeks",
            "Day 1: laptop, accounts, access requests\nDay 2–3: local setup, first PR\n"
            "Week 2: on-call shadow\nEnd of week 2: ship something small to prod",
            "Laptop requests go through IT in #it-help; access to production needs manager "
            "approval in Opal.",
        ),
        (
            "What Tidewater does",
            "Real-time shipment tracking API\n180+ carriers\n12M tracking events / day\n"
            "Customers: retailers, 3PLs, marketplaces",
            "Our biggest customer is a marketplace, about 14% of traffic.",
        ),
        (
            "Architecture at a glance",
            "Edge: Cloudflare → API gateway (Envoy)\nCore services: Go on Kubernetes (EKS)\n"
            "Kafka between services\nPostgres + ClickHouse",
            "We run in AWS eu-west-1 and us-east-1, active-active.",
        ),
        (
            "Request path",
            "Client → Cloudflare → Envoy → tracking-api\nAuth via api-keys service\n"
            "Reads: Redis cache, fallback to Postgres\np99 target 120 ms",
            "Cache hit rate is around 93%. If you see p99 regressions, check cache evictions "
            "first.",
        ),
        (
            "Ingestion pipeline",
            "carrier-connectors: poll / push\nNormalizer → Kafka tracking.events.v2\n"
            "Deduper → event-store\nFan-out to webhooks",
            "Some carriers only offer FTP drops of CSV files every 15 minutes; those connectors "
            "live in the legacy Python repo.",
        ),
        (
            "Data stores",
            "Postgres (Aurora): shipments, accounts\nClickHouse: event history, analytics\n"
            "Redis: cache, rate limits\nS3: raw carrier payloads, 90 days",
            "Never query ClickHouse from request handlers; it is for async jobs and analytics "
            "only.",
        ),
        (
            "Webhooks",
            "At-least-once delivery\nRetries with backoff for 72 h\nHMAC-SHA256 signatures\n"
            "Per-customer ordering",
            "Customers must dedupe on event_id. The dead-letter queue is drained by the "
            "webhook-replayer job.",
        ),
        (
            "Auth & tenancy",
            "API keys hashed (argon2)\nDashboard login: OAuth (Auth0)\nTenant id on every row\n"
            "Row-level security in Postgres",
            None,
        ),
        (
            "Repos & languages",
            "monorepo: Go services, protobufs\ndashboard: TypeScript / Next.js\n"
            "connectors-legacy: Python 3.11\ninfra: Terraform",
            "Don't add new code to connectors-legacy; we're porting connectors to Go one "
            "carrier at a time.",
        ),
        (
            "Local development",
            "make bootstrap\nTilt brings services up in kind\nSeed data: make seed\n"
            "Fake carriers for testing",
            "Bootstrap takes ~20 minutes the first time. If Docker runs out of memory, give it "
            "at least 8 GB.",
        ),
        (
            "CI/CD",
            "GitHub Actions for tests\nArgo CD deploys from main\nCanary 5% → 50% → 100%\n"
            "Auto-rollback on error budget burn",
            "A merge to main reaches production in about 25 minutes if the canary is clean.",
        ),
        (
            "Code review",
            "2 approvals for services, 1 for docs\nCODEOWNERS per directory\n"
            "PRs under 400 lines\nConventional commits",
            "Reviews are expected within one business day; ping #eng-reviews if stuck.",
        ),
        (
            "Testing",
            "Unit tests next to code\nContract tests on protobufs\n"
            "E2E suite nightly against staging\nLoad tests before big launches (k6)",
            None,
        ),
        (
            "Observability",
            "Metrics: Prometheus + Grafana\nLogs: Loki\nTraces: Tempo (OpenTelemetry)\n"
            "Alerts → PagerDuty",
            "Every service has a standard dashboard generated from its SLOs, linked from the "
            "service catalog in Backstage.",
        ),
        (
            "SLOs",
            "API availability 99.95%\nEvent freshness: 95% < 2 min\n"
            "Webhook delivery: 99% < 30 s\nError budget policy",
            "When a service burns more than half its monthly error budget, feature work on "
            "that service stops until it recovers.",
        ),
        (
            "On-call",
            "Weekly rotation, Mon 10:00 handover\nPrimary + secondary\n"
            "Shadow 2 shifts before going primary\nStipend per week",
            "The stipend is 400 euros a week, plus time off in lieu for any night pages.",
        ),
        (
            "Incidents",
            "Declare in #incidents with /incident\nIncident commander ≠ fixer\n"
            "Status page updates every 30 min\nBlameless postmortem within 5 days",
            "Sev-1 means a customer-visible outage or data loss; Sev-2 is degraded service for "
            "many customers.",
        ),
        (
            "Security basics",
            "SSO + hardware keys (YubiKey)\nSecrets in Vault, never in env files\n"
            "Time-boxed production access (Opal)\nDependency scanning (Snyk)",
            "Report anything suspicious to security@. You will never get in trouble for a "
            "false alarm.",
        ),
        (
            "Team map",
            "Ingestion: carrier connectors, normalizer\nCore API: tracking-api, auth\n"
            "Delivery: webhooks, notifications\nPlatform: infra, CI, observability",
            "Each team has an EM and a tech lead; the org chart is in Backstage.",
        ),
        (
            "Glossary",
            "Leg: one carrier's part of a journey\n"
            "Milestone: normalized event (picked up, out for delivery)\n"
            "ETA model: predicted delivery time\nTenant: a customer account",
            None,
        ),
        (
            "Where to get help",
            "#eng-help for anything\nBuddy for your first month\n"
            "Office hours Thursdays 15:00\nDocs: Backstage TechDocs",
            "No question is too small for #eng-help; people answer fast.",
        ),
    ],
    "questions": [
        ("What should I be doing in my first week?", 2),
        ("How do I get access to production?", [2, 19]),
        ("What does the company actually do?", 3),
        ("How many events do we handle a day?", 3),
        ("Who's our biggest customer?", 3),
        ("Can you give me the big picture of how the system fits together?", 4),
        ("Which cloud regions are we running in?", 4),
        ("What happens when a request comes in?", 5),
        ("How often do we hit the cache?", 5),
        ("What's the latency target?", 5),
        ("How does carrier data get into the system?", 6),
        ("What about carriers that only send us files?", 6),
        ("Where is the tracking history kept?", 7),
        ("Can I query ClickHouse from the API?", 7),
        ("How long do we keep the raw payloads?", 7),
        ("What if a customer's endpoint is down when we send them an event?", 8),
        ("How do customers check that a callback really came from us?", 8),
        ("How are API keys stored?", 9),
        ("How do we keep one customer's data away from another's?", 9),
        ("What's the frontend written in?", 10),
        ("Should I add code to the Python connectors?", 10),
        ("How do I run everything on my laptop?", 11),
        ("My setup keeps failing because Docker runs out of memory.", 11),
        ("How long until my merge is live?", 12),
        ("How do bad deploys get rolled back?", 12),
        ("How many approvals does a pull request need?", 13),
        ("How fast should I expect someone to review my code?", 13),
        ("Go back to the part about testing.", 14),
        ("Where do I find the logs?", 15),
        ("What happens when a service blows through its error budget?", 16),
        ("How fresh does the tracking data need to be?", 16),
        ("Do I get paid extra for being on call?", 17),
        ("When do I start being on call?", [2, 17]),
        ("What do I do if production breaks?", 18),
        ("What counts as a sev-1?", 18),
        ("Where do passwords and keys go?", 19),
        ("Which team owns webhooks?", 20),
        ("What's a leg?", 21),
        ("Who do I ask when I'm stuck?", 22),
        ("When are office hours?", 22),
        ("How much vacation do we get?", None),
        ("What's the salary band for a senior engineer?", None),
        ("Do we use GraphQL anywhere?", None),
        ("What's the parental leave policy?", None),
        ("Is there free lunch in the office?", None),
        ("When is the next company all-hands?", None),
        ("Which carriers are we adding next quarter?", None),
        ("Are we allowed to write services in Rust?", None),
    ],
}

DECKS: list[Deck] = [LEDGERLINE, FIELDSTONE_QBR, TIDEWATER_ONBOARDING]
