//! The kernel's own venv, layered on the shared one: where `%pip install` and `!pip install`
//! put packages, for this kernel alone.
//!
//! The layer is a venv of the same interpreter whose `site-packages` starts with a `.pth`
//! line that adds the shared venv's `site-packages` (running its `.pth` files too). Python
//! puts the layer's own packages first, so an installed package shadows the shared one, as
//! in a `--system-site-packages` venv; pip sees the shared packages as already satisfied and
//! installs only what is missing, and never touches the shared venv (it is outside the
//! layer's prefix, and read-only in a sandbox). `pip`, `pip3` and `python` on the kernel's
//! `PATH` are the layer's. The layer lives in the kernel's scratch space and goes with it.

use std::path::Path;

use anyhow::Context;

/// Makes the layer venv at `layer` on top of `shared`.
pub fn create(layer: &Path, shared: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let version = python_dir(shared)?;
    let site = layer.join("lib").join(&version).join("site-packages");
    std::fs::create_dir_all(&site).with_context(|| format!("creating {}", site.display()))?;
    let bin = layer.join("bin");
    std::fs::create_dir_all(&bin)?;
    let interpreter = std::fs::canonicalize(shared.join("bin/python"))
        .with_context(|| format!("resolving {}/bin/python", shared.display()))?;
    // The shared venv's own settings, or (a hand-made venv without them) the interpreter's home.
    let config = std::fs::read_to_string(shared.join("pyvenv.cfg")).unwrap_or_else(|_| {
        let home = interpreter.parent().unwrap_or(Path::new("/usr/bin"));
        format!(
            "home = {}\ninclude-system-site-packages = false\n",
            home.display()
        )
    });
    std::fs::write(layer.join("pyvenv.cfg"), config)?;
    for name in ["python", "python3", &version] {
        let link = bin.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&interpreter, &link)?;
    }
    let shared_site = shared.join("lib").join(&version).join("site-packages");
    std::fs::write(
        site.join("_tandem_shared_venv.pth"),
        format!(
            "import site; site.addsitedir({:?})\n",
            shared_site.to_string_lossy()
        ),
    )?;
    let python = bin.join("python");
    let pip = format!(
        "#!{}\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n",
        python.display()
    );
    let pip3 = format!("pip{}", version.trim_start_matches("python"));
    for name in ["pip", "pip3", pip3.as_str()] {
        let script = bin.join(name);
        std::fs::write(&script, &pip)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// `python3.11`: the shared venv's `lib/` folder for its interpreter.
fn python_dir(shared: &Path) -> anyhow::Result<String> {
    std::fs::read_dir(shared.join("lib"))
        .with_context(|| format!("reading {}/lib", shared.display()))?
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("python3"))
        .with_context(|| format!("{}/lib has no python3.* folder", shared.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_points_at_the_shared_site_packages() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir_all(shared.join("lib/python3.11/site-packages")).unwrap();
        std::fs::create_dir_all(shared.join("bin")).unwrap();
        std::fs::write(shared.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::os::unix::fs::symlink("/bin/sh", shared.join("bin/python")).unwrap();
        let layer = root.path().join("layer");
        create(&layer, &shared).unwrap();
        create(&layer, &shared).unwrap();
        let pth = std::fs::read_to_string(
            layer.join("lib/python3.11/site-packages/_tandem_shared_venv.pth"),
        )
        .unwrap();
        assert!(pth.starts_with("import site; site.addsitedir("));
        assert!(pth.contains("shared/lib/python3.11/site-packages"));
        assert!(layer.join("bin/pip3.11").is_file());
        assert_eq!(
            std::fs::read_to_string(layer.join("pyvenv.cfg")).unwrap(),
            "home = /usr/bin\n"
        );
    }
}
