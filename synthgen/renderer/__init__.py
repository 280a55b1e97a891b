"""The 3D backend: meshes, planning, GL plumbing and the pyrender backend. Importing this
package imports no OpenGL; the backend module does."""
