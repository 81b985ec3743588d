"""Research registry for percutaneous cryoablation of peripheral neuromas (NICE HTG652).

NICE allows the procedure only in research, so every record here is study data: pseudonymised
participants, their procedures (with the stored plan), follow-up instrument answers, adverse
events and re-interventions, all behind an append-only audit trail. The web app and the CLI
only call the services in this package.
"""
