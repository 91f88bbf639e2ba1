//! Fixed-rate sampling, decided per operation exactly as the Application Insights SDKs do,
//! so the gateway keeps or drops an operation the same way an SDK-instrumented backend
//! with the same percentage does.
//!
//! Score (the .NET SDK's `SamplingScoreGenerator`, ported by the Node and JS SDKs): djb2
//! (×33) over the UTF-16 code units of the operation id, repeated until it is at least 8
//! characters long, in wrapping 32-bit signed arithmetic; the absolute value (with
//! `i32::MIN` mapped to `i32::MAX`), divided by `i32::MAX`, times 100. An operation is kept
//! when its score is below the sampling percentage.

/// The djb2 hash the SDKs compute over the operation id.
pub fn sampling_hash(operation_id: &[u8]) -> i32 {
    if operation_id.is_empty() {
        return 0;
    }
    // Operation ids are ASCII (hex, or legacy ids checked to be printable ASCII), so each
    // byte is one UTF-16 code unit. Repeat-doubling until 8 long is the same as cycling.
    let len = operation_id.len();
    let mut doubled = len;
    while doubled < 8 {
        doubled *= 2;
    }
    let mut hash: i32 = 5381;
    for &c in operation_id.iter().cycle().take(doubled) {
        hash = (hash << 5).wrapping_add(hash).wrapping_add(i32::from(c));
    }
    if hash == i32::MIN {
        i32::MAX
    } else {
        hash.abs()
    }
}

/// The sampling score of an operation, 0 to 100.
pub fn score(operation_id: &[u8]) -> f64 {
    f64::from(sampling_hash(operation_id)) / f64::from(i32::MAX) * 100.0
}

/// Whether an operation is kept at `percentage` (0 keeps none, 100 keeps all).
pub fn is_sampled_in(operation_id: &[u8], percentage: f64) -> bool {
    if percentage >= 100.0 {
        return true;
    }
    if percentage <= 0.0 {
        return false;
    }
    score(operation_id) < percentage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_the_dotnet_sdk_test_vectors() {
        // BASE/Test/ServerTelemetryChannel.Test/…/SamplingScoreGeneratorTest.cs
        let vectors: &[(&str, i32)] = &[
            ("ss", 1_179_811_869),
            ("kxi", 34_202_699),
            ("wr", 1_281_077_591),
            ("hq", 1_807_146_729),
            ("ornuu", 1_588_005_865),
            ("iaxxtklcw", 1_941_943_012),
            ("ynehgfhyuiltaiqovbpyhpm", 2_139_623_659),
        ];
        for (input, expected) in vectors {
            assert_eq!(sampling_hash(input.as_bytes()), *expected, "{input}");
        }
    }

    #[test]
    fn score_of_a_w3c_trace_id_matches_the_reference_example() {
        let id = b"4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(sampling_hash(id), 718_577_102);
        assert!((score(id) - 33.46).abs() < 0.01, "{}", score(id));
        assert!(is_sampled_in(id, 33.5));
        assert!(!is_sampled_in(id, 33.4));
    }

    #[test]
    fn edges_keep_all_or_none_and_empty_ids_score_zero() {
        assert_eq!(sampling_hash(b""), 0);
        assert!(is_sampled_in(b"anything", 100.0));
        assert!(!is_sampled_in(b"", 0.0));
        assert!(is_sampled_in(b"", 0.001), "score 0 is below any positive percentage");
    }

    #[test]
    fn about_the_configured_share_of_random_operations_is_kept() {
        let mut ids = crate::ids::IdGenerator::from_seed([3; 32]);
        let kept = (0..20_000)
            .filter(|_| is_sampled_in(&ids.trace_id().to_hex(), 25.0))
            .count();
        assert!((4_500..5_500).contains(&kept), "kept {kept} of 20000 at 25%");
    }
}
