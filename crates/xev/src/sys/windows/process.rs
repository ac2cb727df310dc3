//! Child processes on Windows: opening a process for watching, the job
//! object through which the completion port learns that it exited (the
//! port gets a packet when the job's last process is gone), and its exit
//! code.

use std::io;
use std::os::windows::io::{FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectAssociateCompletionPortInformation,
    SetInformationJobObject, JOBOBJECT_ASSOCIATE_COMPLETION_PORT,
};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, OpenProcess, WaitForSingleObject, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SET_QUOTA, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
};

use super::{neg_last_error, RawHandle};

/// Opens process `pid` for watching: waiting on it, adding it to a job,
/// reading its exit code.
pub(crate) fn open_process(pid: u32) -> io::Result<OwnedHandle> {
    let access = PROCESS_SYNCHRONIZE
        | PROCESS_QUERY_LIMITED_INFORMATION
        | PROCESS_SET_QUOTA
        | PROCESS_TERMINATE;
    // SAFETY: takes integers only.
    let h = unsafe { OpenProcess(access, 0, pid) };
    if h.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `h` is a new handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(h) })
}

/// Whether the process `h` has exited.
pub(crate) fn process_exited(h: RawHandle) -> bool {
    // SAFETY: takes a handle and a zero timeout.
    unsafe { WaitForSingleObject(h as HANDLE, 0) == WAIT_OBJECT_0 }
}

/// The exit code of the exited process `h`.
pub(crate) fn exit_code(h: RawHandle) -> io::Result<u32> {
    let mut code = 0u32;
    // SAFETY: `code` is a live local.
    if unsafe { GetExitCodeProcess(h as HANDLE, &mut code) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(code)
}

/// A new job object that reports to `port` with `key`, holding process
/// `h`: the port gets a `JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO` packet with
/// `key` once the process exits. Returns the job handle, or the raw error.
pub(crate) fn watch_exit(port: HANDLE, key: usize, h: RawHandle) -> Result<RawHandle, i32> {
    // SAFETY: null attributes and name are allowed.
    let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    if job.is_null() {
        return Err(neg_last_error());
    }
    let info = JOBOBJECT_ASSOCIATE_COMPLETION_PORT {
        CompletionKey: key as *mut core::ffi::c_void,
        CompletionPort: port,
    };
    // SAFETY: `info` is a live local of the size given; `job` is ours.
    let ok = unsafe {
        SetInformationJobObject(
            job,
            JobObjectAssociateCompletionPortInformation,
            (std::ptr::addr_of!(info)).cast(),
            std::mem::size_of::<JOBOBJECT_ASSOCIATE_COMPLETION_PORT>() as u32,
        ) != 0
            && AssignProcessToJobObject(job, h as HANDLE) != 0
    };
    if !ok {
        let e = neg_last_error();
        close_job(job as RawHandle);
        return Err(e);
    }
    Ok(job as RawHandle)
}

/// Closes a job made by [`watch_exit`] (its process is left alone: jobs are
/// created without kill-on-close).
pub(crate) fn close_job(job: RawHandle) {
    // SAFETY: closes a handle the caller owns.
    unsafe { CloseHandle(job as HANDLE) };
}

/// Ends process `h` with exit code 1 (`TerminateProcess`, as
/// `std::process::Child::kill` does). A process that has exited already
/// is left as it is.
pub(crate) fn terminate_process(h: RawHandle) -> io::Result<()> {
    use windows_sys::Win32::System::Threading::TerminateProcess;
    if process_exited(h) {
        return Ok(());
    }
    // SAFETY: takes a handle and an integer.
    if unsafe { TerminateProcess(h as HANDLE, 1) } == 0 {
        // It may have exited meanwhile (access is then denied).
        if process_exited(h) {
            return Ok(());
        }
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
