import Foundation

/// The cause of a Foundation file error in words ("Permission denied", "is a folder, not a
/// file"), for one-line messages: on Linux `localizedDescription` is often only "The operation
/// could not be completed. (NSCocoaErrorDomain error 513.)", which tells a user nothing.
public enum FileErrorReason {
    /// Words for `error` from an operation on `path` (the path lets a folder-for-a-file mistake
    /// be named as such).
    public static func describe(_ error: Error, path: String? = nil) -> String {
        if let path {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue,
               let e = error as? CocoaError, [.fileReadUnknown, .fileReadNoPermission].contains(e.code) {
                return "is a folder, not a file"
            }
        }
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        if let e = error as? CocoaError {
            switch e.code {
            case .fileNoSuchFile, .fileReadNoSuchFile: return String(cString: strerror(ENOENT))
            case .fileWriteNoPermission, .fileReadNoPermission: return String(cString: strerror(EACCES))
            case .fileWriteOutOfSpace: return String(cString: strerror(ENOSPC))
            case .fileWriteVolumeReadOnly: return String(cString: strerror(EROFS))
            case .fileWriteFileExists: return String(cString: strerror(EEXIST))
            case .fileReadTooLarge: return "file too large"
            default: break
            }
        }
        return error.localizedDescription
    }
}
