//! `circuitry submit --slurm`: an sbatch array job whose tasks each compute one shard of an
//! experiment's nodes into a shared cache (`circuitry run --shard I/N`), and a job that depends on
//! the whole array (`afterok`) and assembles the tables from that cache (`circuitry run`).
//!
//! The cluster's nodes need only a filesystem shared with the submitting machine for the
//! experiment, its inputs, the cache and the outputs; the scripts use absolute paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::RunError;

/// What to submit.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The circuitry executable the jobs run.
    pub exe: PathBuf,
    /// The directory the jobs run in (relative paths of the command line are relative to it).
    pub workdir: PathBuf,
    pub experiment: String,
    pub file: PathBuf,
    pub out_root: PathBuf,
    pub cache: PathBuf,
    pub shards: usize,
    /// `--set` overrides, passed on to every job.
    pub sets: Vec<String>,
    pub device: Option<String>,
    /// Options for both sbatch calls (`--partition gpu`, `--gres gpu:1`, `--time 2:00:00`).
    pub sbatch_args: Vec<String>,
    /// Where the scripts and the jobs' logs go.
    pub script_dir: PathBuf,
}

/// The two job scripts.
#[derive(Clone, Debug, PartialEq)]
pub struct Scripts {
    pub shards: String,
    pub assemble: String,
}

/// The ids sbatch gave the two jobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    pub shards_job: String,
    pub assemble_job: String,
    pub script_dir: PathBuf,
}

/// `s` as one word of a POSIX shell command.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn path_word(p: &Path) -> String {
    quote(&p.display().to_string())
}

impl Submission {
    fn run_command(&self, shard: Option<&str>) -> String {
        let mut words = vec![
            path_word(&self.exe),
            "run".to_string(),
            path_word(&self.file),
            "--out".to_string(),
            path_word(&self.out_root),
            "--cache".to_string(),
            path_word(&self.cache),
            "--quiet".to_string(),
        ];
        if let Some(s) = shard {
            words.push("--shard".to_string());
            words.push(s.to_string());
        }
        if let Some(d) = &self.device {
            words.push("--device".to_string());
            words.push(quote(d));
        }
        for s in &self.sets {
            words.push("--set".to_string());
            words.push(quote(s));
        }
        words.join(" ")
    }

    /// The array job's and the assemble job's scripts.
    pub fn scripts(&self) -> Scripts {
        let header = |name: &str, log: &str, extra: &str| {
            format!(
                "#!/bin/bash\n#SBATCH --job-name={}\n#SBATCH --output={}\n{extra}set -euo pipefail\ncd {}\n",
                quote(&format!("circuitry-{}-{name}", self.experiment)),
                path_word(&self.script_dir.join(log)),
                path_word(&self.workdir),
            )
        };
        let shards = format!(
            "{}# Shard $SLURM_ARRAY_TASK_ID of {n}: computes its nodes into the shared cache.\nexec {}\n",
            header(
                "shards",
                "shard-%a.out",
                &format!("#SBATCH --array=0-{}\n", self.shards - 1)
            ),
            self.run_command(Some(&format!("\"$SLURM_ARRAY_TASK_ID/{}\"", self.shards))),
            n = self.shards,
        );
        let assemble = format!(
            "{}# Runs after every shard succeeded: assembles the tables from the cache.\nexec {}\n",
            header("assemble", "assemble.out", ""),
            self.run_command(None),
        );
        Scripts { shards, assemble }
    }

    /// Writes the scripts and submits them with `sbatch` (the assemble job after the array).
    pub fn submit(&self) -> Result<Submitted, RunError> {
        std::fs::create_dir_all(&self.script_dir).map_err(|e| RunError::io(&self.script_dir, e))?;
        let scripts = self.scripts();
        let shards_path = self.script_dir.join("shards.sbatch");
        let assemble_path = self.script_dir.join("assemble.sbatch");
        for (path, text) in [
            (&shards_path, &scripts.shards),
            (&assemble_path, &scripts.assemble),
        ] {
            std::fs::write(path, text).map_err(|e| RunError::io(path, e))?;
        }
        let shards_job = self.sbatch(&[], &shards_path)?;
        let assemble_job = self.sbatch(
            &[format!("--dependency=afterok:{shards_job}")],
            &assemble_path,
        )?;
        Ok(Submitted {
            shards_job,
            assemble_job,
            script_dir: self.script_dir.clone(),
        })
    }

    fn sbatch(&self, extra: &[String], script: &Path) -> Result<String, RunError> {
        let output = Command::new("sbatch")
            .arg("--parsable")
            .args(&self.sbatch_args)
            .args(extra)
            .arg(script)
            .current_dir(&self.workdir)
            .output()
            .map_err(|e| {
                RunError::Spec(format!(
                    "could not run sbatch ({e}); `circuitry submit --slurm` needs SLURM's sbatch on PATH"
                ))
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(RunError::Spec(format!(
                "sbatch {} failed: {}{}",
                script.display(),
                String::from_utf8_lossy(&output.stderr).trim(),
                stdout.trim()
            )));
        }
        // `--parsable` prints `ID` or `ID;CLUSTER`.
        let id = stdout.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RunError::Spec(format!(
                "sbatch printed `{}`, not a job id",
                stdout.trim()
            )));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission() -> Submission {
        Submission {
            exe: "/opt/circuitry/bin/circuitry".into(),
            workdir: "/home/me/exp dir".into(),
            experiment: "ioi".into(),
            file: "/home/me/exp dir/ioi.toml".into(),
            out_root: "/shared/outputs".into(),
            cache: "/shared/cache".into(),
            shards: 3,
            sets: vec!["analyses.heads.layers=[0, 1]".into()],
            device: Some("cuda".into()),
            sbatch_args: vec![],
            script_dir: "/shared/outputs/.circuitry/slurm/ioi/1".into(),
        }
    }

    #[test]
    fn the_scripts_run_each_shard_then_assemble_with_quoted_arguments() {
        let s = submission().scripts();
        assert!(s.shards.contains("#SBATCH --array=0-2\n"), "{}", s.shards);
        assert!(s.shards.contains("--shard \"$SLURM_ARRAY_TASK_ID/3\""));
        assert!(s.shards.contains("cd '/home/me/exp dir'\n"));
        assert!(s.shards.contains("'/home/me/exp dir/ioi.toml'"));
        assert!(s.shards.contains("--set 'analyses.heads.layers=[0, 1]'"));
        assert!(s.shards.contains("--cache /shared/cache"));
        assert!(s.shards.contains("--device cuda"));
        assert!(!s.assemble.contains("--shard") && !s.assemble.contains("--array"));
        assert!(
            s.assemble
                .contains("exec /opt/circuitry/bin/circuitry run ")
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
