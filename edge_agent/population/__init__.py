"""Population signal (docs/design.md §7): de-identified contribution records, rotating pseudonyms,
and a k-anonymous, differentially private aggregator. See docs/privacy.md."""
