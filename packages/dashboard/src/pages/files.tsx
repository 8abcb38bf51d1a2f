// Uploaded files (a job names them in file_ids and finds them at /uploads/<name>): upload, list, delete.
import type { FileInfo, FileList } from '@mags/api';
import { type FormEvent, useRef, useState } from 'react';
import { api, seg } from '../api';
import { bytes, relative, when } from '../format';
import { ConfirmButton, ErrorText, Section, useAction, useResource } from '../ui';

export function FilesPage() {
  const list = useResource<FileList>('/mags-files');
  const upload = useAction();
  const remove = useAction();
  const input = useRef<HTMLInputElement>(null);
  const [uploaded, setUploaded] = useState<FileInfo>();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const file = input.current?.files?.[0];
    if (!file) return;
    void upload.run(async () => {
      setUploaded(
        await api<FileInfo>('POST', `/mags-files?name=${encodeURIComponent(file.name)}`, undefined, { raw: file }),
      );
      if (input.current) input.current.value = '';
      list.reload();
    });
  };
  return (
    <>
      <h1>Files</h1>
      <Section title="Upload a file">
        <form onSubmit={submit} className="stack">
          <label htmlFor="upload-file">File (a job finds it at /uploads/&lt;name&gt;)</label>
          <input id="upload-file" type="file" ref={input} required />
          <div>
            <button type="submit" id="upload" disabled={upload.busy}>
              {upload.busy ? 'Uploading…' : 'Upload'}
            </button>
          </div>
          <ErrorText error={upload.error} />
          {uploaded ? (
            <p role="status">
              Uploaded {uploaded.name} ({bytes(uploaded.size)}), id <span className="mono">{uploaded.file_id}</span>.
            </p>
          ) : null}
        </form>
      </Section>
      <Section title="Your files">
        <ErrorText error={list.error} />
        <ErrorText error={remove.error} />
        {list.data && list.data.files.length === 0 ? <p className="muted">No files.</p> : null}
        {list.data && list.data.files.length > 0 ? (
          <div className="table-wrap">
            <table id="files-table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Size</th>
                  <th scope="col">Uploaded</th>
                  <th scope="col">Id</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.files.map((f) => (
                  <tr key={f.file_id}>
                    <td>{f.name}</td>
                    <td>{bytes(f.size)}</td>
                    <td title={when(f.created_at)}>{relative(f.created_at)}</td>
                    <td className="mono small" title={`sha256 ${f.sha256}`}>
                      {f.file_id}
                    </td>
                    <td>
                      <ConfirmButton
                        label="Delete"
                        confirm={`Delete ${f.name}`}
                        disabled={remove.busy}
                        onConfirm={() =>
                          remove.run(async () => {
                            await api('DELETE', `/mags-files/${seg(f.file_id)}`);
                            list.reload();
                          })
                        }
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Section>
    </>
  );
}
