"""Suite-wide settings, and the slow tier.

``make test`` (CI) runs every test; ``make test-fast`` (outside tests/registry) and ``make
test-fast-registry`` run ``-m "not slow"`` for feedback in under a minute each (28 s and 59 s on
2 idle cores, 2026-12-01). Whole slow files carry ``pytestmark = pytest.mark.slow``; the single
slow tests of otherwise fast files are listed here, chosen from ``--durations`` of the fast tier
(2 workers; each took more than about 8 s on a shared, heavily loaded 2-core machine, about 1 s
or more on an idle one). Tests against PostgreSQL are slow as a rule: they need a server
cluster started. Nothing is skipped: the slow tier still runs in CI.
"""

from __future__ import annotations

import os

import pytest

#: Node-id prefixes of single slow tests (parametrised variants included).
SLOW_TESTS = (
    "tests/test_device_probe.py::test_device_coupling_agrees_with_the_axisymmetric_solver",
    "tests/test_device_probe.py::test_capacity_limited_probe_freezes_like_a_line_sink",
    "tests/test_case_and_cli.py::test_simulate_json_contract_and_outputs",
    "tests/test_case_and_cli.py::test_gas_driven_probe_takes_the_gas_model_tip_temperature",
    "tests/test_thermal_engine.py::test_active_thaw_shrinks_the_iceball_faster_than_passive_thaw",
    "tests/test_thermal_engine.py::test_energy_is_conserved_exactly",
    "tests/test_thermal_engine.py::test_steady_perfused_cylinder_matches_bessel_solution",
    "tests/test_thermal_engine.py::test_oblique_probe_gives_the_same_iceball_as_an_aligned_one",
    "tests/test_thermal_engine.py::test_time_below_threshold_and_point_history_agree",
    "tests/test_thermal_backends.py::test_array_backend_matches_numba",
    "tests/anatomy/test_phantoms.py::test_phantom",
    "tests/anatomy/test_phantoms.py::test_stump_phantom_states_its_bulb_rule_and_relief_mechanism",
    "tests/analysis/test_study_analysis.py::test_cli_analyse_writes_the_report_and_json",
    "tests/analysis/test_study_analysis.py::test_rct_report_has_between_arm_effects_for_every",
    "tests/analysis/test_study_analysis.py::test_kaplan_meier_median_matches_a_hand_worked",
    "tests/analysis/test_study_analysis.py::test_mmrm_recovers_the_known_treatment_effect",
    "tests/analysis/test_meta.py::test_cli_end_to_end",
    "tests/analysis/test_meta.py::test_user_file_pools_and_outcome_vocabulary",
    "tests/analysis/test_meta_metafor.py::test_generic_file_cli_pools_bcg_like_metafor",
    "tests/analysis/test_economics.py::test_baseline_adjustment_equals_ols",
    "tests/registry/test_registry_keys.py::test_serve_dev_warns_loudly_and_refuses_a_database",
    "tests/registry/test_registry_keys.py::test_rotating_the_session_key_ends_sessions",
    "tests/registry/test_registry_validation.py::test_700_single_field_mutations_are_refused",
    "tests/registry/test_registry_randomisation.py::test_twenty_concurrent_randomisations",
    "tests/registry/test_registry_blinding.py::test_blinded_roles_see_no_arm_anywhere",
    "tests/registry/test_registry_blinding.py::test_blinded_role_cannot_randomise_and_emergency",
    "tests/registry/test_registry_admin.py::test_a_study_with_two_sites_and_four_users_through",
    "tests/registry/test_registry_edits.py::test_patch_endpoints",
    "tests/registry/test_registry_edits.py::test_edit_and_withdraw_pages",
    "tests/registry/test_registry_accounts.py::test_reset_pages_and_api",
    "tests/registry/test_registry_accounts.py::test_login_is_rate_limited_with_retry_after",
    "tests/registry/test_registry_audit_trail.py::test_monitor_reads_only_their_sites_trail",
    "tests/registry/test_registry_audit_trail.py::test_audit_verify_names_each_kind_of_tampering",
    "tests/registry/test_registry_audit_trail.py::test_logins_exports_and_nhs_views_are_audited",
    "tests/registry/test_registry_exports.py::test_tidy_export_is_read_by_the_analysis_package",
    "tests/registry/test_registry_exports.py::test_fhir_bundle_validates",
    "tests/registry/test_registry_pages.py::test_followup_errors_are_shown_beside_the_field",
    "tests/registry/test_registry_pages.py::test_enrol_errors_beside_fields_and_monitor_read",
    "tests/registry/test_registry_plan_files.py::test_api_upload_and_site_scoped_serving",
    "tests/registry/test_registry_api.py::test_roles_and_sites",
    "tests/registry/test_registry_schema_dashboard.py::test_migrations_match_the_models",
    "tests/registry/test_registry_outcomes.py::test_dashboard_shows_inline_svg",
    # second pass (fast tier at load 4-6 on 2 cores: each more than 2.5 s)
    "tests/registry/test_registry_schema_dashboard.py::test_pg_migration_matches_the_models",
    "tests/test_device_probe.py::test_gas_side_limit_holds_the_wall_above_the_gas",
    "tests/analysis/test_study_analysis.py::test_calibration_detects_when_predictions_are_too",
    "tests/registry/test_registry_model_audit.py::test_database_rejects_audit_update_and_delete",
    "tests/anatomy/test_injury.py::test_blocked_length_matches_analytic",
    "tests/test_sweep_small.py::test_all_blocked_sweep_plots_without_negative_error_bars",
    "tests/registry/test_registry_api.py::test_walk_through",
    "tests/analysis/test_meta_metafor.py::test_no_random_heterogeneous_set_collapses_to_zero",
    # issue 18 workspace uploads (16 s and 8 s at load 11 on 2 cores)
    "tests/registry/test_registry_case_images.py::test_upload_stores_the_image_and_segments",
    "tests/registry/test_registry_case_images.py::test_dicom_uploads_are_deidentified",
    # third pass (fast tier at load 15-18 on 2 cores: each 8 s or more; 2026-12-01)
    "tests/registry/test_registry_jobs.py::test_plan_job_runs_in_the_worker_and_stores_the_bundle",
    "tests/anatomy/test_plan_from_segmentation.py::test_plan_from_dicom_seg_on_a_ct_series_and_export_back",
    "tests/registry/test_registry_visit_status.py::test_visit_not_done_appears_with_its_reason_in_the_consort_flow_of_analyse",
    "tests/registry/test_registry_jobs.py::test_sigterm_gives_the_running_job_back",
    "tests/registry/test_registry_epro_browser.py::test_reminder_link_to_scores_on_a_phone",
    "tests/anatomy/test_centreline.py::test_quarter_arc_in_an_oblique_anisotropic_grid",
    "tests/registry/test_registry_queries.py::test_query_cycle_in_chromium",
    "tests/registry/test_properties_registry.py::test_stratified_balance_holds_within_each_site_whatever_the_arrival_order",
    "tests/anatomy/test_plan_from_segmentation.py::test_phantoms_written_as_slicer_cases_read_back_with_their_hand_drawn_nerve",
    "tests/registry/test_registry_jobs.py::test_claim_is_exclusive",
    "tests/registry/test_registry_seed_demo.py::test_sample_data_is_plausible_and_deterministic",
    "tests/registry/test_registry_preview_api.py::test_readout_matches_placement_preview",
    "tests/analysis/test_study_analysis.py::test_calibration_sets_registry_relief_against_published_series",
    "tests/test_report_tables.py::test_pdf_pages_carry_the_tables_as_text",
    "tests/analysis/test_effects.py::test_subgroup_interaction_f_test_by_hand",
    "tests/test_report_tables.py::test_a_plan_without_block_relief_or_warnings_still_reports",
    "tests/anatomy/test_dicom_seg.py::test_seg_validates_and_puts_labels_at_the_dicom_world_positions",
    "tests/analysis/test_validate.py::test_a_control_arm_without_procedure_rows_keeps_its_denominators",
    "tests/registry/test_registry_jobs.py::test_plan_job_that_cannot_plan_fails_once_with_its_error_shown",
    "tests/registry/test_registry_epro.py::test_expired_link_is_refused_with_410",
    "tests/analysis/test_validate.py::test_missing_days_are_derived_from_dates_and_listed_or_refused",
    "tests/registry/test_registry_instrument_limits.py::test_stump_and_mobility_are_recorded_through_the_followup_form",
    "tests/analysis/test_economics.py::test_seeded_bootstrap_is_reproducible",
    "tests/test_planning.py::test_report_renders_every_section_and_escapes_input",
    "tests/test_preview.py::test_cache_round_trip_and_a_corrupt_file_is_rebuilt",
    "tests/registry/test_registry_visit_status.py::test_missing_codes_are_never_scored_as_values",
    "tests/registry/test_registry_case_images.py::test_a_label_map_needs_names_and_the_image_grid",
    "tests/analysis/test_validate.py::test_arms_and_sites_outside_the_protocol_lists_are_refused",
    "tests/registry/test_registry_admin.py::test_deactivation_ends_a_live_session",
    "tests/analysis/test_economics.py::test_cli_refuses_a_bad_unit_cost_file_before_analysing",
    "tests/analysis/test_estimands.py::test_tipping_point_moves_the_effect_towards_null_and_is_seeded",
)


def pytest_configure(config) -> None:
    # Under pytest-xdist each worker gets one Numba thread, so two workers on two cores do not
    # oversubscribe the machine (the kernels are parallel over x-slabs).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import numba

        numba.set_num_threads(1)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW_TESTS) or "postgres" in item.nodeid.lower():
            item.add_marker(pytest.mark.slow)
