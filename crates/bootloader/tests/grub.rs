//! GRUB's EFI application made from the host's packages (grub-common, grub-efi-amd64-bin;
//! CI installs them, and their absence fails with the package to install).

use d2l_bootloader::{EfiArch, GrubEfi};

#[test]
fn host_grub_makes_the_same_efi_application_twice() {
    let a = GrubEfi::from_host(EfiArch::X86_64).unwrap_or_else(|e| panic!("{e}"));
    let b = GrubEfi::from_host(EfiArch::X86_64).unwrap();
    assert!(a.image().len() > 100_000, "{} bytes", a.image().len());
    assert!(a.image().starts_with(b"MZ"));
    assert!(
        a.image() == b.image(),
        "grub-mkimage output differs between runs"
    );
    assert_eq!(a.arch().removable_path(), "EFI/BOOT/BOOTX64.EFI");
}

#[test]
fn a_missing_architecture_names_its_package() {
    // CI does not install the arm64 modules; where they are, they must work.
    match GrubEfi::from_host(EfiArch::Aarch64) {
        Ok(grub) => assert_eq!(grub.arch().removable_path(), "EFI/BOOT/BOOTAA64.EFI"),
        Err(e) => assert!(e.to_string().contains("grub-efi-arm64-bin"), "{e}"),
    }
}
