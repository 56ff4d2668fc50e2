//! Counting and printing the checks: `PASS`/`FAIL` lines on stdout and the final
//! `N passed, M failed`.

#[derive(Default)]
pub struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    /// Records one check.
    pub fn check(&mut self, name: &str, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("PASS {name}");
            }
            Err(why) => {
                self.failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }

    /// Records `condition` as a check, with `detail` saying what was seen when it fails.
    pub fn expect(&mut self, name: &str, condition: bool, detail: impl FnOnce() -> String) {
        self.check(name, if condition { Ok(()) } else { Err(detail()) });
    }

    /// Prints the summary and returns the process exit code.
    pub fn finish(&self) -> i32 {
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 && self.passed > 0 {
            0
        } else {
            1
        }
    }
}
